import ArgumentParser
import Speculate

/// `speculate proposers`: the built-in proposers, the plugins found, and their options.
struct ProposersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proposers",
        abstract: "List the built-in proposers, the plugins found, and the options that shape them.",
        discussion: """
            Plugins are found in the directories of $SPECULATE_PLUGIN_PATH (colon-separated) and, for \
            the example plugins this package builds (libSpeculate*.so), next to the speculate executable. \
            Use one by name or path: --proposer plugin:line-echo or --proposer plugin:/path/libX.so:OPTIONS. \
            Plugins and ffi: functions run in a speculate-plugin-host process of their own (found beside \
            speculate, or at $SPECULATE_PLUGIN_HOST): a plugin that crashes, hangs, floods its output or \
            spins is stopped, restarted at most $SPECULATE_PLUGIN_RESTARTS times (default 2) and then \
            dropped, and the run goes on with the same output. Limits: $SPECULATE_PLUGIN_TIMEOUT (seconds \
            per call, default 2), $SPECULATE_PLUGIN_MEMORY_MB (2048), $SPECULATE_PLUGIN_CPU_SECONDS (3600), \
            $SPECULATE_PLUGIN_OUTPUT_KB (1024). plugin-inprocess: and ffi-inprocess: load into this process.
            """)

    @Option(
        help: ArgumentHelp(
            "Load the plugin at this path in a plugin host process and describe it (checks its ABI).",
            valueName: "path"))
    var plugin: String?

    func run() async throws {
        if let plugin {
            do {
                let library = try HostedPluginProposer.describe(path: plugin)
                print("\(library.name) (plugin ABI v\(PluginLibrary.supportedABIVersion)) at \(library.path)")
                print("  \(library.summary)")
                print("  options: \(library.optionsHelp.isEmpty ? "none" : library.optionsHelp)")
                print("  use: --proposer plugin:\(library.path)[:OPTIONS]")
            } catch {
                throw ValidationError(error.description)
            }
            return
        }
        print("Built-in proposers (use with --proposer; repeat for an ensemble):")
        let rows =
            [
                ("none", "no speculation: plain autoregressive decoding on the same runtime (for comparison)"),
                (
                    "auto[:draft=none]",
                    "chooses among the other proposers given (plus n-gram lookup, and the target's paired catalog draft unless a draft is given or draft=none) every step with a measured cost model"
                ),
            ]
            + ProposerRegistry.standard.factories.map { ($0.usage, $0.summary) }
        for (usage, summary) in rows {
            print("  " + usage.padding(toLength: 44, withPad: " ", startingAt: 0) + " " + summary)
        }
        let (plugins, refused) = PluginSearch().discover()
        print("\nPlugins found:" + (plugins.isEmpty && refused.isEmpty ? " none (set SPECULATE_PLUGIN_PATH)" : ""))
        for library in plugins {  // descriptions read by plugin host processes
            print("  plugin:\(library.name)".padding(toLength: 46, withPad: " ", startingAt: 0) + " " + library.summary)
            print(
                String(repeating: " ", count: 47) + "options: "
                    + (library.optionsHelp.isEmpty ? "none" : library.optionsHelp))
            print(String(repeating: " ", count: 47) + "at " + library.path)
        }
        for (path, error) in refused { print("  refused \(path): \(error)") }
        print(
            """

            Options that shape every proposer's drafts:
              --tree k1,k2,...   per-depth branching of the merged tree (SpecInfer's <k1,k2,...>)
              --max-nodes N      most drafted nodes per step
              --draft-length N   longest draft (tree depth)
              --verify MODE      greedy | stochastic | sequoia | typical (lossy)
            """)
    }
}
