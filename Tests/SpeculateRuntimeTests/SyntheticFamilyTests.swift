import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// Families no downloadable file here has, proven on small models with random weights in the
/// family's real tensor layout (`Tests/Reference/synthetic_model.py`), against the numpy
/// reference (`forward_reference.py`), and for tree attention against one token at a time.
@Suite("Synthetic models of other families", .serialized)
struct SyntheticFamilyTests {
    /// Three prompts of token ids (the synthetic files have no vocabulary).
    static let prompts: [[TokenID]] = (0..<3).map { (p: Int) -> [TokenID] in
        (0..<24).map { (i: Int) -> TokenID in TokenID((i * 37 + p * 101 + 7) % 512) }
    }

    static func model(_ architecture: String, in folder: URL) throws -> (TransformerModel, String) {
        let path = folder.appendingPathComponent("\(architecture).gguf").path
        _ = try TestSupport.runPython("synthetic_model.py", [architecture, path])
        return (try TransformerModel(path: path), path)
    }

    /// The file's `general.architecture` for a synthetic family.
    static func fileArchitecture(_ family: String) -> String {
        family.hasPrefix("llama") || family == "mistral" ? "llama" : family
    }

    @Test(
        "logits and greedy continuations match the numpy reference",
        arguments: ["qwen3", "llama3", "llama-linear", "mistral", "phi3"])
    func matchesReference(architecture: String) throws {
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (model, path) = try Self.model(architecture, in: folder)
        #expect(model.config.architecture.rawValue == Self.fileArchitecture(architecture))
        #expect(ModelSupport.problems(try GGUFFile(path: path)) == [])
        let reference = try numpyReference(
            model: path, prompts: Self.prompts, logitPositions: Self.prompts[0].count, greedy: 32)
        let float = try #require(reference["float"])
        let emulated = try #require(reference["emulated"])
        var error: Float = 0
        var emulatedError: Float = 0
        var noise: Float = 0
        var scale: Float = 0
        for (index, prompt) in Self.prompts.enumerated() {
            let session = try InferenceSession(model: model, context: 128)
            let logits = try session.evaluate(tokens: prompt, parents: prompt.indices.map { $0 - 1 })
            let floatRows = try #require(float[index]["logits"] as? [[Float]])
            let emulatedRows = try #require(emulated[index]["logits"] as? [[Float]])
            for row in prompt.indices {
                let ours = Array(logits.row(for: row))
                let theirs = floatRows[row]
                let theirsEmulated = emulatedRows[row]
                scale = max(scale, theirs.map(abs).max() ?? 0)
                error = max(error, zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0)
                emulatedError = max(emulatedError, zip(ours, theirsEmulated).map { abs($0 - $1) }.max() ?? 0)
                noise = max(noise, zip(theirs, theirsEmulated).map { abs($0 - $1) }.max() ?? 0)
            }
            // Greedy ids along the float reference's own continuation (teacher forcing): equal
            // except where the reference's top two are closer than the 8-bit noise.
            let continuation = try #require(float[index]["greedy"] as? [Int]).map { TokenID($0) }
            let margins = try #require(float[index]["margins"] as? [Double])
            let forced = try InferenceSession(model: model, context: 128)
            let sequence = prompt + continuation.dropLast()
            let rows = Array(prompt.count - 1..<sequence.count)
            let forcedLogits = try forced.evaluate(
                tokens: sequence, parents: sequence.indices.map { $0 - 1 }, logits: .selected(rows))
            for (step, row) in rows.enumerated() {
                let ours = argmax(forcedLogits.row(for: row))
                #expect(
                    ours == continuation[step] || Float(margins[step]) < 2 * noise,
                    "\(architecture) prompt \(index) step \(step): \(ours) against \(continuation[step]), margin \(margins[step])"
                )
            }
        }
        print(
            "\(architecture) synthetic vs numpy: max |logit error| \(error) against the float reference, \(emulatedError) against the emulated one (\(String(format: "%.4f", emulatedError / scale)) of the largest logit \(scale)); the reference's own 8-bit sensitivity \(noise)"
        )
        #expect(scale > 1, "logits nearly flat: \(scale)")
        #expect(error <= 2 * noise + 0.01 * scale)
    }

    /// The same weights as `llama3-unscaled` (same shapes, same seed), with one difference each:
    /// Llama 3's or linear RoPE scaling, or a sliding window shorter than the prompt.
    @Test(
        "RoPE scaling and a sliding window move the logits (so the reference comparison sees them)",
        arguments: ["llama3", "llama-linear", "mistral"])
    func differencesMatter(scaled: String) throws {
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let prompt = Self.prompts[0]
        var rows: [[Float]] = []
        for architecture in [scaled, "llama3-unscaled"] {
            let (model, _) = try Self.model(architecture, in: folder)
            let session = try InferenceSession(model: model, context: 128)
            let logits = try session.evaluate(tokens: prompt, parents: prompt.indices.map { $0 - 1 })
            rows.append(Array(logits.row(for: prompt.count - 1)))
        }
        let scale = rows[0].map(abs).max() ?? 0
        let difference = zip(rows[0], rows[1]).map { abs($0 - $1) }.max() ?? 0
        #expect(difference > 0.05 * scale, "\(scaled) moved the last logits by \(difference) of \(scale)")
    }

    @Test("RoPE scaling the runtime does not implement (YaRN, LongRoPE) is refused by name")
    func refusesYaRN() throws {
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("yarn.gguf").path
        _ = try TestSupport.runPython("synthetic_model.py", ["llama-yarn", path])
        #expect(throws: RuntimeError.unsupportedFeature("RoPE scaling 'yarn' (llama.rope.scaling.type)")) {
            _ = try TransformerModel(path: path)
        }
        // `models info` says so from the metadata alone; a file it can run has no problems.
        #expect(ModelSupport.problems(try GGUFFile(path: path)).map { $0.contains("yarn") } == [true])
        _ = try TestSupport.runPython("synthetic_model.py", ["phi3-longrope", path])
        #expect(throws: RuntimeError.unsupportedFeature("LongRoPE scaling (rope_factors_long.weight)")) {
            _ = try TransformerModel(path: path)
        }
        _ = try TestSupport.runPython("synthetic_model.py", ["llama3", path])
        #expect(ModelSupport.problems(try GGUFFile(path: path)) == [])
    }

    @Test(
        "a token tree gives each node the logits of its own path, decoded one token at a time",
        arguments: ["qwen3", "llama3", "mistral", "phi3"])
    func treeMatchesSequential(architecture: String) throws {
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (model, _) = try Self.model(architecture, in: folder)
        let prompt = Self.prompts[0]
        // Two branches under the root: 10 → 11 → 12 and 20 → 21.
        let tokens: [TokenID] = [10, 11, 12, 20, 21]
        let parents = [-1, 0, 1, -1, 3]
        let tree = try InferenceSession(model: model, context: 128)
        _ = try tree.append(prompt)
        let treeLogits = try tree.evaluate(tokens: tokens, parents: parents)
        for path in [[0], [0, 1], [0, 1, 2], [3], [3, 4]] {
            let node = path.last!
            let alone = try InferenceSession(model: model, context: 128)
            _ = try alone.append(prompt)
            var logits: Logits?
            for index in path {
                logits = try alone.evaluate(tokens: [tokens[index]], parents: [-1])
                try alone.commit([0])
            }
            let last = try #require(logits)
            #expect(Array(treeLogits.row(for: node)) == Array(last.row(for: 0)), "node \(node) differs")
        }
    }
}
