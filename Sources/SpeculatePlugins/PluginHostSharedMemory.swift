import CSpeculatePluginChannel
import Foundation
import SpeculateCore

#if canImport(Glibc)
    import Glibc
#endif

/// The shared memory: the draft area first, then the vocabulary during create and the context
/// afterwards. Written only while no request is outstanding.
extension PluginHostProcess {
    /// Grows the shared memory to hold `bytes` (the host remaps when a message says so).
    func reserve(_ bytes: Int) throws(PluginHostFailure) {
        guard bytes > sharedSize else { return }
        var size = sharedSize
        while size < bytes { size *= 2 }
        guard ftruncate(sharedFile, off_t(size)) == 0,
            let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, sharedFile, 0), mapping != MAP_FAILED
        else { throw fail(.cannotStart("cannot grow shared memory to \(size) bytes")) }
        munmap(shared, sharedSize)
        shared = mapping
        sharedSize = size
    }

    /// Writes the vocabulary after the draft area: (size + 1) byte offsets, then the bytes.
    /// Returns where free space starts.
    func writeVocabulary(_ vocabulary: PluginVocabulary) throws(PluginHostFailure) -> Int {
        var offsets: [UInt32] = [0]
        var bytes: [UInt8] = []
        offsets.reserveCapacity(vocabulary.size + 1)
        for token in 0..<vocabulary.size {
            bytes += vocabulary.tokenBytes(Token(token)) ?? []
            offsets.append(UInt32(bytes.count))
        }
        let start = Self.contextOffset
        let end = start + offsets.count * 4 + bytes.count
        try reserve((end + 3) / 4 * 4 + 64 * 1024)
        offsets.withUnsafeBytes { (shared + start).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        bytes.withUnsafeBytes {
            guard let base = $0.baseAddress else { return }
            (shared + start + offsets.count * 4).copyMemory(from: base, byteCount: $0.count)
        }
        sharedContextCount = 0
        return (end + 3) / 4 * 4
    }

    /// Makes shared memory hold `context`, writing only what changed since the last call.
    func writeContext(_ context: [Token]) throws(PluginHostFailure) {
        try reserve(Self.contextOffset + context.count * 4)
        let stored = (shared + Self.contextOffset).assumingMemoryBound(to: Int32.self)
        var same = min(sharedContextCount, context.count)
        context.withUnsafeBufferPointer { tokens in
            if memcmp(stored, tokens.baseAddress!, same * 4) != 0 {
                var index = 0
                while index < same && stored[index] == tokens[index] { index += 1 }
                same = index
            }
            if context.count > same {
                (stored + same).update(from: tokens.baseAddress! + same, count: context.count - same)
            }
        }
        sharedContextCount = context.count
    }
}
