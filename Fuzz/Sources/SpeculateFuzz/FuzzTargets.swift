// libFuzzer entry point for every Speculate fuzz target; SPECULATE_FUZZ_TARGET picks one (libFuzzer
// owns the command line). Each target feeds the bytes to a parser of untrusted input and checks,
// beyond "no crash", a property the parser promises. See Fuzz/README.md.
import Foundation
import Speculate
import SpeculateAPI
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateRuntime

/// A target: called once per input.
typealias FuzzTarget = @Sendable ([UInt8]) -> Void

let targets: [String: FuzzTarget] = [
    "gguf": fuzzGGUF,
    "tokenizer": fuzzTokenizer,
    "chat": fuzzChat,
    "plugin-draft": fuzzPluginDraft,
    "proposer-spec": fuzzProposerSpec,
    "request": fuzzRequest,
    "json-schema": fuzzJSONSchema,
]

let selected: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["SPECULATE_FUZZ_TARGET"] ?? ""
    guard let target = targets[name] else {
        FileHandle.standardError.write(
            Data(
                "SPECULATE_FUZZ_TARGET must be one of: \(targets.keys.sorted().joined(separator: ", ")) (got '\(name)')\n"
                    .utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// swift-format-ignore: AlwaysUseLowerCamelCase
/// libFuzzer's driver (in the -sanitize=fuzzer runtime), under its C name.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target's entry point as `main` under this name, which would
/// replace libFuzzer's own `main`; so the entry point hands over to libFuzzer's driver.
@_cdecl("SpeculateFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}

/// Stops the run with a message libFuzzer reports as a crash (a broken property, not a trap).
func violated(_ message: String) -> Never {
    FileHandle.standardError.write(Data("property violated: \(message)\n".utf8))
    abort()
}

/// A little-endian reader over the input that yields zeros once it runs out.
struct InputReader {
    var bytes: [UInt8]
    var position = 0
    mutating func byte() -> UInt8 {
        defer { position += 1 }
        return position < bytes.count ? bytes[position] : 0
    }
    mutating func int32() -> Int32 {
        var value: UInt32 = 0
        for shift in stride(from: 0, to: 32, by: 8) { value |= UInt32(byte()) << UInt32(shift) }
        return Int32(bitPattern: value)
    }
    mutating func float() -> Float { Float(bitPattern: UInt32(bitPattern: int32())) }
    var rest: [UInt8] { position < bytes.count ? Array(bytes[position...]) : [] }
}

// MARK: GGUF reader, tensor table, model loader

/// A GGUF file from untrusted bytes: the reader must refuse it with a typed error or describe
/// only tensors that lie inside the data; every tensor's first row must then dequantize without
/// reading outside the buffer (AddressSanitizer watches), and the model loader must either
/// refuse the file or build a model whose matrices it checked.
@Sendable func fuzzGGUF(_ bytes: [UInt8]) {
    guard let file = try? GGUFFile(bytes: bytes) else { return }
    for tensor in file.tensors {
        let data = file.data(of: tensor)
        guard data.count == tensor.byteCount, tensor.offset >= 0 else {
            violated("tensor \(tensor.name): data of \(data.count) bytes for \(tensor.byteCount)")
        }
        if tensor.rowCount > 0, tensor.rowLength <= 1 << 16 { _ = file.dequantize(tensor, rows: 0..<1) }
    }
    _ = try? Tokenizer(gguf: file)
    // A model the loader accepts must run: its matrices were checked, so the kernels read only
    // inside them. Bounded so that a valid but large file cannot stall the fuzzer.
    guard let model = try? TransformerModel(gguf: file), model.weightBytes < 64 << 20,
        let session = try? InferenceSession(model: model, context: min(16, model.config.trainedContext))
    else { return }
    let vocabulary = model.config.vocabularySize
    guard let logits = try? session.append([0, 1].map { TokenID($0 % vocabulary) }) else { return }
    guard logits.count == vocabulary else { violated("\(logits.count) logits for a vocabulary of \(vocabulary)") }
}

// MARK: Tokenizer

/// The Qwen2.5 tokenizer (its byte-level BPE, pre-tokenizer and special tokens), loaded once
/// from SPECULATE_FUZZ_MODEL.
let tokenizer: Tokenizer = {
    guard let path = ProcessInfo.processInfo.environment["SPECULATE_FUZZ_MODEL"],
        let tokenizer = try? Tokenizer(gguf: GGUFFile(path: path))
    else {
        FileHandle.standardError.write(Data("SPECULATE_FUZZ_MODEL must name a GGUF file with a tokenizer\n".utf8))
        exit(2)
    }
    return tokenizer
}()

/// Arbitrary bytes as text and as token ids: encoding is lossless (decode(encode(t)) == t for
/// any valid UTF-8 text, special tokens parsed or not), ids decode without trapping whatever
/// they are, and the core's streamed text (``OutputText``) adds up to the whole decode.
@Sendable func fuzzTokenizer(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    for special in [false, true] {
        let ids = tokenizer.encode(text, parseSpecial: special)
        guard tokenizer.decode(ids) == text else {
            violated("decode(encode(text, parseSpecial: \(special))) != text for \(Array(text.utf8))")
        }
    }
    var reader = InputReader(bytes: bytes)
    var ids: [TokenID] = []
    // Some ids are out of range.
    for _ in 0..<bytes.count / 4 { ids.append(reader.int32() % Int32(tokenizer.vocabularySize + 8)) }
    let whole = tokenizer.decode(ids)
    var streaming = OutputText(spell: { tokenizer.bytes(of: $0) })
    var pieces = ""
    for id in ids {
        _ = streaming.append([id])
        pieces += streaming.takePieces().map(\.text).joined()
    }
    pieces += streaming.takePieces(final: true).map(\.text).joined()
    guard pieces == whole else { violated("streamed text differs from decode for ids \(ids)") }
}

// MARK: Chat template

/// Messages from the input (NUL separates them, roles cycle): the token-level ChatML prompt
/// has exactly the format's control tokens, whatever the messages say, and spells the text form.
@Sendable func fuzzChat(_ bytes: [UInt8]) {
    let roles = ["system", "user", "assistant"]
    let parts = bytes.split(separator: 0, omittingEmptySubsequences: false).prefix(16)
    let messages = parts.enumerated().map {
        ChatMessage(role: roles[$0.offset % 3], content: String(decoding: $0.element, as: UTF8.self))
    }
    guard let format = try? tokenizer.chatFormat.get(), let ids = try? ChatFormat.tokens(messages, tokenizer: tokenizer)
    else { violated("the Qwen file's chat format is not rendered") }
    // The file's template opens with its default system turn when the messages have none.
    let turns = messages.count + (messages.first?.role != "system" && format.defaultSystem != nil ? 1 : 0)
    let start = tokenizer.id(of: "<|im_start|>")!
    let end = tokenizer.id(of: "<|im_end|>")!
    let starts = ids.filter { $0 == start }.count
    let ends = ids.filter { $0 == end }.count
    guard starts == turns + 1, ends == turns else {
        violated("\(messages.count) messages gave \(starts) <|im_start|> and \(ends) <|im_end|>")
    }
    guard tokenizer.decode(ids) == format.text(messages) else {
        violated("chat tokens do not spell the ChatML text")
    }
}

// MARK: Plugin drafts

/// What a plugin could write into its draft buffers: validation refuses it with a typed error
/// or yields a candidate that the tree merger turns into a tree within the budget.
@Sendable func fuzzPluginDraft(_ bytes: [UInt8]) {
    var reader = InputReader(bytes: bytes)
    let capacity = Int(reader.byte() % 64)
    let count = reader.int32() % 80
    let vocabulary = 1 + Int(reader.byte()) * 4
    let maxDepth = Int(reader.byte() % 12)
    var tokens: [Int32] = []
    var parents: [Int32] = []
    var scores: [Float] = []
    var probabilities: [Float] = []
    for _ in 0..<capacity {
        tokens.append(reader.int32() % 1100)
        parents.append(reader.int32() % 70)
        scores.append(reader.float())
        probabilities.append(reader.float())
    }
    guard
        let candidate = try? PluginDraftValidation.candidate(
            plugin: "fuzz", count: count, capacity: capacity, tokens: tokens, parents: parents,
            scores: scores, probabilities: probabilities, vocabularySize: vocabulary,
            maxDepth: maxDepth)
    else { return }
    let budget = TreeBudget(
        maxNodes: 1 + Int(reader.byte() % 32), maxDepth: max(1, maxDepth),
        branching: (0..<Int(reader.byte() % 4)).map { _ in 1 + Int(reader.byte() % 3) })
    let tree = ScoreRankedMerger().merge(
        [(proposer: 0, candidate: candidate), (proposer: 1, candidate: candidate)], budget: budget)
    guard tree.count <= budget.maxNodes else {
        violated("merged tree of \(tree.count) nodes for a budget of \(budget.maxNodes)")
    }
    for (index, node) in tree.nodes.enumerated() {
        guard node.parent < index, node.depth <= budget.maxDepth, node.token >= 0, Int(node.token) < vocabulary else {
            violated(
                "node \(index) (parent \(node.parent), depth \(node.depth), token \(node.token)) breaks the tree's invariants"
            )
        }
    }
}

// MARK: --proposer and --tree syntax

/// A proposer list and tree as typed on the command line: splitting, kind parsing, n-gram
/// options and branching parse or refuse, never trap.
@Sendable func fuzzProposerSpec(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    for spec in ProposerRegistry.standard.split([text]) {
        let (kind, argument) = ProposerRegistry.parse(spec)
        if kind == "ngram" { _ = try? NGramOptions(argument, treeRequested: bytes.count % 2 == 0) }
    }
    if let branching = TreeBudget.parseBranching(text) {
        guard branching.allSatisfy({ $0 > 0 }) else {
            violated("branching \(branching) from '\(text)' has a non-positive width")
        }
    }
}

// MARK: Server requests

let parser = RequestParser(modelName: "fuzz-model", defaults: StrategyRequest(proposers: ["auto"]), context: 4096)

/// A request body for both endpoints: a job or an APIError, and a job's limits hold.
@Sendable func fuzzRequest(_ bytes: [UInt8]) {
    let body = Data(bytes)
    for job in [try? parser.completion(body), try? parser.chat(body) { ChatTemplate(family: .chatML).text($0) }] {
        guard let job else { continue }
        if let maxTokens = job.maxTokens, !(1...4096).contains(maxTokens) {
            violated("max_tokens \(maxTokens) accepted")
        }
        guard job.stop.count <= 4 else { violated("\(job.stop.count) stop strings accepted") }
        guard job.sampling.temperature.isFinite, job.sampling.temperature >= 0 else {
            violated("temperature \(job.sampling.temperature) accepted")
        }
    }
}

// MARK: JSON schemas and the grammar

/// A schema (JSON text), a 0 byte, then bytes that steer a walk through its grammar: a schema is
/// refused with a typed error or compiled; the matcher never traps on any bytes; a walk that
/// takes only bytes the grammar allows never reaches a dead end (a state where no byte may follow
/// and the document is not complete), and every document it completes is JSON that Foundation's
/// parser reads (where that parser is strict enough to judge: no `\u` escapes, no exponents).
@Sendable func fuzzJSONSchema(_ bytes: [UInt8]) {
    let split = bytes.firstIndex(of: 0) ?? bytes.count
    let steering = split < bytes.count ? Array(bytes[(split + 1)...]) : []
    guard let schema = try? JSONValue(parsing: bytes[..<split]), let grammar = try? JSONGrammar(schema: schema) else {
        return
    }
    var direct = JSONMatcher(grammar)
    _ = direct.feed(steering, grammar: grammar)
    var walk = JSONMatcher(grammar)
    var text: [UInt8] = []
    for choice in steering.prefix(400) {
        let allowed = (0...255).map(UInt8.init).filter { byte in
            var probe = walk
            return probe.feed(byte, grammar: grammar)
        }
        guard !allowed.isEmpty else {
            if !walk.isComplete { violated("dead end after \(String(decoding: text, as: UTF8.self).debugDescription)") }
            break
        }
        let byte = allowed[Int(choice) % allowed.count]
        walk.feed(byte, grammar: grammar)
        text.append(byte)
        if walk.isComplete {
            let judged =
                !text.contains(UInt8(ascii: "\\")) && !text.contains(UInt8(ascii: "e"))
                && !text.contains(UInt8(ascii: "E"))
            if judged, (try? JSONSerialization.jsonObject(with: Data(text), options: [.fragmentsAllowed])) == nil {
                violated(
                    "completed a document Foundation cannot read: \(String(decoding: text, as: UTF8.self).debugDescription)"
                )
            }
        }
    }
}
