#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Read-only bytes of a model file: a memory map of a file on disk, or an owned copy.
///
/// The bytes never change after creation, so sharing the storage between threads is safe;
/// that is why the class can promise `Sendable` although it holds a raw pointer.
public final class ByteStorage: @unchecked Sendable {
    /// The first byte.
    public let base: UnsafeRawPointer
    /// The number of bytes.
    public let count: Int
    private let isMapped: Bool

    /// Maps the file at `path` read-only into memory.
    public init(mapping path: String) throws(GGUFError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        guard size > 0 else {
            throw .truncated(what: "header", offset: 0, needed: 24, available: 0)
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw .cannotOpen(path: path, reason: "mmap failed: " + String(cString: strerror(errno)))
        }
        base = UnsafeRawPointer(mapped)
        count = size
        isMapped = true
    }

    /// Copies `bytes` into storage owned by this object (used for in-memory files and tests).
    public init(copying bytes: [UInt8]) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { source in
            if let address = source.baseAddress { buffer.copyMemory(from: address, byteCount: bytes.count) }
        }
        base = UnsafeRawPointer(buffer)
        count = bytes.count
        isMapped = false
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// The bytes as a buffer; valid while this object lives.
    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Tells the kernel the given range of a mapped file will not be read again soon, so its
    /// pages leave this process's resident memory (they stay in the page cache and come back
    /// on the next read). A hint; failures are ignored; a no-op for owned storage.
    public func adviseDontNeed(offset: Int, length: Int) {
        #if canImport(Glibc)
            guard isMapped, offset >= 0, length > 0, offset + length <= count else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = (offset + page - 1) / page * page
            let end = (offset + length) / page * page
            guard end > start else { return }
            _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
        #endif
    }

    /// Asks the kernel to read ahead the given range (a hint; failures are ignored).
    public func adviseWillNeed(offset: Int, length: Int) {
        #if canImport(Glibc)
            guard isMapped, offset >= 0, length > 0, offset + length <= count else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = offset / page * page
            _ = madvise(UnsafeMutableRawPointer(mutating: base + start), offset + length - start, MADV_WILLNEED)
        #endif
    }
}
