import ArgumentParser
import Foundation
import SpeculateCatalog
import SpeculateFormat

/// Options shared by the tokenizer commands.
struct TokenizerModelOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "A catalog name or a path to a .gguf file.")
    var model: String = ModelCatalog.defaultTarget

    func loadTokenizer() throws -> Tokenizer {
        let url = try ModelStore().resolve(model)
        return try Tokenizer(gguf: GGUFFile(path: url.path))
    }
}

/// Reads all of standard input as UTF-8.
func readStandardInput() -> String {
    String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
}

/// `speculate tokenize`: text to token ids.
struct TokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of some text as a JSON array.",
        discussion: "Reads the text from the argument, or from standard input when there is none.")

    @OptionGroup var options: TokenizerModelOption

    @Flag(help: "Match control tokens written in the text (for example <|im_start|>) as single tokens.")
    var special = false

    @Argument(help: "The text (default: standard input).")
    var text: String?

    func run() async throws {
        let tokenizer = try options.loadTokenizer()
        let ids = tokenizer.encode(text ?? readStandardInput(), parseSpecial: special)
        print("[" + ids.map(String.init).joined(separator: ",") + "]")
    }
}

/// `speculate detokenize`: token ids to text.
struct DetokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Print the text of token ids given as a JSON array (or separated by spaces or commas).",
        discussion: "Reads the ids from the arguments, or from standard input when there are none.")

    @OptionGroup var options: TokenizerModelOption

    @Argument(help: "Token ids (default: standard input).")
    var ids: [String] = []

    func run() async throws {
        let tokenizer = try options.loadTokenizer()
        let source = ids.isEmpty ? readStandardInput() : ids.joined(separator: " ")
        var parsed: [TokenID] = []
        for field in source.split(whereSeparator: { " ,\n\t\r[]".contains($0) }) {
            guard let id = TokenID(field), tokenizer.contains(id) else {
                throw ValidationError("'\(field)' is not a token id of this model (0..<\(tokenizer.vocabularySize))")
            }
            parsed.append(id)
        }
        FileHandle.standardOutput.write(Data(tokenizer.decode(parsed).utf8))
    }
}
