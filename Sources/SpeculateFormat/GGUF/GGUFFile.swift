/// Where one tensor's data lies in a GGUF file, and its shape and type.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name, for example `blk.0.attn_q.weight`.
    public let name: String
    /// Dimensions in GGML order: `dimensions[0]` is the length of one row (the fastest axis).
    public let dimensions: [Int]
    /// The element type.
    public let type: GGMLType
    /// Offset of the data from the start of the data section.
    public let offset: Int
    /// Bytes of data.
    public let byteCount: Int

    /// Total number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Elements in one row (`dimensions[0]`).
    public var rowLength: Int { dimensions[0] }
    /// Number of rows (the product of the other dimensions).
    public var rowCount: Int { elementCount / dimensions[0] }
    /// Bytes in one row.
    public var rowBytes: Int { type.byteCount(elements: dimensions[0]) }
}

/// A parsed GGUF file (versions 2 and 3) over read-only storage, usually a memory map.
///
/// Parsing validates the whole header up front, so that later accessors can trust offsets;
/// tensor data is not touched until asked for.
public struct GGUFFile: Sendable {
    /// The GGUF version (2 or 3).
    public let version: UInt32
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Tensor descriptions in file order.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment`, or 32 when absent.
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    /// The underlying bytes.
    public let storage: ByteStorage
    private let tensorIndex: [String: Int]

    /// Maps and parses the file at `path`.
    public init(path: String) throws(GGUFError) {
        try self.init(storage: ByteStorage(mapping: path))
    }

    /// Parses a GGUF image held in memory.
    public init(bytes: [UInt8]) throws(GGUFError) {
        try self.init(storage: ByteStorage(copying: bytes))
    }

    /// Parses the GGUF image in `storage`.
    public init(storage: ByteStorage) throws(GGUFError) {
        self.storage = storage
        var reader = ByteReader(storage.buffer)
        let magic = try reader.bytes(4, what: "magic")
        guard magic == [0x47, 0x47, 0x55, 0x46] else { throw .badMagic(found: magic) }
        version = try reader.read(UInt32.self, what: "version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try reader.read(UInt64.self, what: "tensor count")
        let keyCount = try reader.read(UInt64.self, what: "metadata count")
        // Each key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8+4+8+4+8.
        guard keyCount <= UInt64(reader.remaining / 13) else {
            throw .absurdCount(what: "metadata count", count: keyCount)
        }
        guard tensorCount <= UInt64(reader.remaining / 32) else {
            throw .absurdCount(what: "tensor count", count: tensorCount)
        }

        var keys: [String] = []
        var values: [String: GGUFValue] = [:]
        keys.reserveCapacity(Int(keyCount))
        for _ in 0..<Int(keyCount) {
            let key = try reader.string(what: "metadata key")
            let rawType = try reader.read(UInt32.self, what: "value type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw .unknownValueType(key: key, rawType: rawType)
            }
            let value = try reader.value(of: type, key: key, depth: 0)
            guard values.updateValue(value, forKey: key) == nil else { throw .duplicateKey(key) }
            keys.append(key)
        }
        metadataKeys = keys
        metadata = values

        var alignment = 32
        if let stored = values["general.alignment"] {
            guard case .uint32(let value) = stored else {
                throw .typeMismatch(key: "general.alignment", expected: "uint32", found: stored.typeName)
            }
            guard value > 0, value <= 65536, value & (value - 1) == 0 else { throw .badAlignment(UInt64(value)) }
            alignment = Int(value)
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        infos.reserveCapacity(Int(tensorCount))
        var rawInfos: [(name: String, dims: [Int], type: GGMLType, offset: UInt64)] = []
        for _ in 0..<Int(tensorCount) {
            let name = try reader.string(what: "tensor name")
            let dimCount = try reader.read(UInt32.self, what: "dimension count of '\(name)'")
            guard dimCount >= 1, dimCount <= 4 else {
                throw .badTensorShape(tensor: name, reason: "\(dimCount) dimensions (1 to 4 allowed)")
            }
            var dims: [Int] = []
            for _ in 0..<dimCount {
                let dim = try reader.read(UInt64.self, what: "dimension of '\(name)'")
                guard dim >= 1, dim <= UInt64(Int32.max) else {
                    throw .badTensorShape(tensor: name, reason: "dimension \(dim)")
                }
                dims.append(Int(dim))
            }
            let rawType = try reader.read(UInt32.self, what: "type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw .unknownTensorType(tensor: name, rawType: rawType)
            }
            let offset = try reader.read(UInt64.self, what: "offset of '\(name)'")
            guard index.updateValue(rawInfos.count, forKey: name) == nil else { throw .duplicateTensor(name) }
            rawInfos.append((name, dims, type, offset))
        }
        tensorIndex = index

        let headerEnd = reader.offset
        let dataStart = (headerEnd + alignment - 1) / alignment * alignment
        dataOffset = dataStart
        let dataSize = UInt64(max(0, storage.count - dataStart))
        for raw in rawInfos {
            var elements = 1
            for dim in raw.dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, product <= 1 << 40 else {
                    throw .badTensorShape(tensor: raw.name, reason: "element count overflows")
                }
                elements = product
            }
            guard raw.dims[0] % raw.type.blockSize == 0 else {
                throw .badTensorShape(
                    tensor: raw.name,
                    reason:
                        "row length \(raw.dims[0]) is not a multiple of the \(raw.type) block size \(raw.type.blockSize)"
                )
            }
            let size = raw.type.byteCount(elements: elements)
            guard raw.offset % UInt64(alignment) == 0,
                raw.offset <= dataSize, UInt64(size) <= dataSize - raw.offset
            else {
                throw .tensorOutOfBounds(tensor: raw.name, offset: raw.offset, size: UInt64(size), dataSize: dataSize)
            }
            infos.append(
                GGUFTensorInfo(
                    name: raw.name, dimensions: raw.dims, type: raw.type,
                    offset: Int(raw.offset), byteCount: size))
        }
        tensors = infos
    }

    // MARK: Tensors

    /// The tensor called `name`, or nil.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor called `name`, or a ``GGUFError/missingTensor(_:)`` error.
    public func requireTensor(_ name: String) throws(GGUFError) -> GGUFTensorInfo {
        guard let info = tensor(named: name) else { throw .missingTensor(name) }
        return info
    }

    /// The raw bytes of `tensor`; valid while ``storage`` lives.
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.base + dataOffset + tensor.offset, count: tensor.byteCount)
    }

    // MARK: Typed metadata accessors

    /// The value stored at `key`, or a ``GGUFError/missingKey(_:)`` error.
    public func value(_ key: String) throws(GGUFError) -> GGUFValue {
        guard let value = metadata[key] else { throw .missingKey(key) }
        return value
    }

    /// An integer-valued key.
    public func integer(_ key: String) throws(GGUFError) -> Int {
        let stored = try value(key)
        guard let result = stored.intValue else {
            throw .typeMismatch(key: key, expected: "an integer", found: stored.typeName)
        }
        return result
    }

    /// A floating-point key (integers are accepted too).
    public func float(_ key: String) throws(GGUFError) -> Double {
        let stored = try value(key)
        guard let result = stored.doubleValue else {
            throw .typeMismatch(key: key, expected: "a number", found: stored.typeName)
        }
        return result
    }

    /// A string key.
    public func string(_ key: String) throws(GGUFError) -> String {
        let stored = try value(key)
        guard let result = stored.stringValue else {
            throw .typeMismatch(key: key, expected: "a string", found: stored.typeName)
        }
        return result
    }

    /// An array of strings.
    public func stringArray(_ key: String) throws(GGUFError) -> [String] {
        let stored = try value(key)
        guard case .array(.string, let values) = stored else {
            throw .typeMismatch(key: key, expected: "an array of strings", found: stored.typeName)
        }
        return values.map { $0.stringValue ?? "" }
    }

    /// An array of integers of any integer type.
    public func integerArray(_ key: String) throws(GGUFError) -> [Int] {
        try numbers(key, expected: "an array of integers") { $0.intValue }
    }

    /// An array of numbers of any numeric type.
    public func floatArray(_ key: String) throws(GGUFError) -> [Double] {
        try numbers(key, expected: "an array of numbers") { $0.doubleValue }
    }

    /// The array at `key`, each element converted by `convert` (nil: the wrong type).
    private func numbers<T>(_ key: String, expected: String, _ convert: (GGUFValue) -> T?) throws(GGUFError) -> [T] {
        let stored = try value(key)
        guard let values = stored.arrayValue else {
            throw .typeMismatch(key: key, expected: expected, found: stored.typeName)
        }
        var result: [T] = []
        result.reserveCapacity(values.count)
        for element in values {
            guard let number = convert(element) else {
                throw .typeMismatch(key: key, expected: expected, found: stored.typeName)
            }
            result.append(number)
        }
        return result
    }

    /// `general.architecture`, the key prefix of the model's hyper-parameters.
    public var architecture: String? { metadata["general.architecture"]?.stringValue }
}
