/// The reversible byte-to-character mapping of byte-level BPE (GPT-2).
///
/// Printable bytes stand for themselves; the others (controls, space, and a few Latin-1
/// positions) are moved to U+0100 and up, so every token string is printable text.
enum ByteLevel {
    /// The character that stands for each byte.
    static let characterForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte each mapped character stands for (indexed by scalar value, < 324).
    static let byteForCharacter: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in characterForByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The bytes a byte-level token string stands for, or nil if it holds a character
    /// outside the mapping.
    static func bytes(of token: String) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard scalar.value < 324 else { return nil }
            let byte = byteForCharacter[Int(scalar.value)]
            guard byte >= 0 else { return nil }
            result.append(UInt8(byte))
        }
        return result
    }

    /// The byte-level token string for `bytes`.
    static func string(of bytes: [UInt8]) -> String {
        var text = String.UnicodeScalarView()
        for byte in bytes { text.append(characterForByte[Int(byte)]) }
        return String(text)
    }
}
