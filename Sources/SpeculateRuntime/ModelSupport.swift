import CSpeculateKernels
import SpeculateFormat

/// Whether the runtime can run a file, read from its metadata and tensor table alone (no weights
/// are loaded): what `speculate models info` reports.
public enum ModelSupport {
    /// What stops the runtime from running `file`, one line per missing piece (empty: it runs).
    /// Loading may still fail on a file that is malformed in ways the table does not show.
    public static func problems(_ file: GGUFFile) -> [String] {
        let config: ModelConfig
        do {
            config = try ModelConfig(gguf: file)
        } catch {
            return ["\(error)"]
        }
        var problems: [String] = []
        var required = ["token_embd.weight", "output_norm.weight"]
        for layer in 0..<config.layerCount {
            required += ["attn_norm", "ffn_norm"].map { "blk.\(layer).\($0).weight" }
            required += ProjectionLayout.requiredMatrices(file, layer: layer, config: config)
        }
        let missing = required.filter { file.tensor(named: $0) == nil }
        if let first = missing.first {
            let more = missing.count > 1 ? " and \(missing.count - 1) more" : ""
            problems.append("missing tensor '\(first)'\(more) (a layout this family's recipe does not read?)")
        }
        // Matrices need a product kernel for their type; vectors are dequantized once at load.
        for tensor in file.tensors where tensor.dimensions.count == 2 && tensor.dimensions[1] > 1 {
            if spec_act_format_for(Int32(tensor.type.rawValue)) < 0 {
                problems.append("tensor '\(tensor.name)' has type \(tensor.type), which no kernel multiplies")
                break
            }
        }
        return problems
    }
}
