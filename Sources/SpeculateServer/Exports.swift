// The request schema (parsing, validation, OpenAI-shaped errors) lives in SpeculateAPI, which
// has no HTTP dependency (the fuzz targets use it without building the server's); `import
// SpeculateServer` still brings it.
@_exported import SpeculateAPI
