import Foundation
import SpeculateRuntime

/// llama-server's `/infill` answers: one object per stream chunk (`content`, `stop`), and the
/// whole or last one with why generation stopped and the token counts.
extension ResponseShape {
    /// llama-server's completion object: the text, `stop`, why it stopped, the token counts.
    func infillObject(_ c: Completion, content: String) -> [String: Any] {
        [
            "content": content, "stop": true, "model": model, "id_slot": 0,
            "stop_type": c.statistics.stopReason == .stopString
                ? "word" : c.finishReason == "stop" ? "eos" : "limit",
            "tokens_predicted": c.completionTokens, "tokens_evaluated": c.promptTokens,
            "speculate": statistics(c),
        ]
    }
}
