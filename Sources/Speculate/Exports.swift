// `import Speculate` brings the whole framework and holds nothing of its own: the core protocols,
// the runtime, the built-in proposers, plugins, the model catalog, the strategy registry and cost
// cache, and the facade that loads a target and generates with a strategy.
@_exported import SpeculateCatalog
@_exported import SpeculateCore
@_exported import SpeculateEngine
@_exported import SpeculateFormat
@_exported import SpeculateGrammar
@_exported import SpeculatePlugins
@_exported import SpeculateProposers
@_exported import SpeculateRuntime
@_exported import SpeculateStrategies
