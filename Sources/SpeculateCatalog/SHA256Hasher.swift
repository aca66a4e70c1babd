import CLibCrypto
import Foundation

/// An incremental SHA-256 digest, computed by the system's libcrypto (OpenSSL's EVP interface).
///
/// Feed bytes with ``update(_:)`` as they arrive and read the digest once with ``finalize()``;
/// the model store hashes a model while it writes it, so a multi-gigabyte file is read once.
public final class SHA256Hasher {
    private let context: OpaquePointer

    /// A hasher with nothing hashed yet.
    public init() {
        // Allocation and initialization fail only when memory runs out; nothing can be done then.
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto could not start a SHA-256 digest")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Adds `data` to the digest.
    public func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    /// Adds `bytes` to the digest.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// The digest of everything added, as 64 lowercase hexadecimal digits. Call it once.
    public func finalize() -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }

    /// The SHA-256 of `bytes` as lowercase hex.
    public static func hex(of bytes: some Collection<UInt8>) -> String {
        let hasher = SHA256Hasher()
        Array(bytes).withUnsafeBytes { hasher.update($0) }
        return hasher.finalize()
    }
}
