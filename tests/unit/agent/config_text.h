// A config from TOML text for agent tests: one drop-in, no validation beyond
// the parser's, any diagnostic fails the test that asked for it.
#pragma once

#include <boost/test/unit_test.hpp>
#include <string>

#include "sanagent/agent/config.h"

namespace sanagent::agent::test {

inline Config parse(const std::string& text) {
    Config config;
    Diagnostics diagnostics;
    merge_toml(config, text, "test.conf", diagnostics);
    BOOST_TEST_REQUIRE(diagnostics.empty(), diagnostics.text());
    return config;
}

}  // namespace sanagent::agent::test
