#include "speculate_plugin.h"

uint32_t spec_plugin_header_version(void) {
    return SPECULATE_PLUGIN_ABI_VERSION;
}
