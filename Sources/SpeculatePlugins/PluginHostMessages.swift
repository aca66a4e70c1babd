import CSpeculatePluginChannel
import Foundation
import SpeculateCore

#if canImport(Glibc)
    import Glibc
#endif

/// Messages on the channel: headers, sending, receiving against a deadline, and the answers to
/// the host's tokenizer calls during create.
extension PluginHostProcess {
    func header(kind: spec_channel_kind) -> spec_channel_message {
        sequence &+= 1
        var message = spec_channel_message()
        message.kind = kind.rawValue
        message.sequence = sequence
        return message
    }

    func send(_ message: spec_channel_message, _ bytes: [UInt8], during: String) throws(PluginHostFailure) {
        if let failure { throw failure }
        var message = message
        let status = bytes.withUnsafeBytes { spec_channel_send(channel, &message, $0.baseAddress, $0.count) }
        guard status == 0 else { throw fail(gone(during: during)) }
    }

    func receive(deadline: Double, during: String, limit: Double? = nil) throws(PluginHostFailure) -> (
        header: spec_channel_message, bytes: [UInt8]
    ) {
        if let failure { throw failure }
        var message = spec_channel_message()
        let remaining = max(0, deadline - now())
        let length = spec_channel_receive(
            channel, &message, payload.baseAddress, payload.count, Int32(min(remaining * 1000, 1e9).rounded(.up)))
        switch length {
        case 0...: return (message, Array(UnsafeRawBufferPointer(rebasing: payload[..<Int(length)])))
        case -1: throw fail(.timedOut(seconds: limit ?? configuration.timeLimit, during: during))
        case -2: throw fail(gone(during: during))
        case -3: throw fail(.malformed("sent bytes that are not a channel message", during: during))
        default: throw fail(.malformed(String(cString: strerror(errno)), during: during))
        }
    }

    /// Waits for the answer to an `observe` still outstanding.
    func finishObserve(deadline: Double) throws(PluginHostFailure) {
        guard let expected = pendingObserve else { return }
        let answer = try receive(deadline: deadline, during: "observe")
        guard answer.header.kind == SPEC_MSG_OBSERVED.rawValue, answer.header.sequence == expected else {
            throw fail(.malformed("answered observe with message kind \(answer.header.kind)", during: "observe"))
        }
        pendingObserve = nil
    }

    func answerTokenize(
        _ first: (header: spec_channel_message, bytes: [UInt8]), vocabulary: PluginVocabulary, at offset: Int,
        deadline: Double
    ) throws(PluginHostFailure) {
        let total = Int(first.header.values.0)
        guard total >= 0, total <= 1 << 30 else {
            throw fail(.malformed("tokenize of \(total) bytes", during: "create"))
        }
        var text = first.bytes
        while text.count < total {
            let part = try receive(deadline: deadline, during: "create")
            guard part.header.kind == SPEC_MSG_TOKENIZE_MORE.rawValue else {
                throw fail(.malformed("a tokenize request ended early", during: "create"))
            }
            text += part.bytes
        }
        guard text.count == total else { throw fail(.malformed("a tokenize request ran long", during: "create")) }
        let tokens = vocabulary.tokenize(String(decoding: text, as: UTF8.self))
        try reserve(offset + tokens.count * 4)
        tokens.withUnsafeBytes { (shared + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var answer = header(kind: SPEC_MSG_TOKENS)
        answer.values.0 = Int64(tokens.count)
        answer.values.1 = Int64(offset)
        answer.values.2 = Int64(sharedSize)
        try send(answer, [], during: "create")
    }
}
