// `import Speculate` brings the whole framework: the core protocols, the runtime, the built-in
// proposers, plugins, the model catalog and the proposer registry that ties them together.
@_exported import SpeculateCatalog
@_exported import SpeculateCore
@_exported import SpeculateFormat
@_exported import SpeculatePlugins
@_exported import SpeculateProposers
@_exported import SpeculateRuntime
