// sanctl: how an admin talks to sanagent. See docs/sanctl.md.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "sanagent/agent/observe.h"

namespace {

constexpr const char* kUsage = R"(usage: sanctl COMMAND [OPTIONS]

commands:
  observe [--json] [--target-root DIR]   what sanagent sees of this machine: links,
                                         the LIO target tree, LVM
  version                                print the version
)";

int cmd_observe(const std::vector<std::string>& args) {
    sanagent::agent::ObserveOptions options;
    bool json = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--json") {
            json = true;
        } else if (args[i] == "--target-root" && i + 1 < args.size()) {
            options.target_root = args[++i];
        } else {
            std::cerr << "sanctl observe: unknown argument '" << args[i] << "'\n" << kUsage;
            return 2;
        }
    }
    sanagent::SystemCommandRunner runner;
    auto observation = sanagent::agent::observe_machine(options, runner);
    if (json)
        std::cout << sanagent::agent::to_json(observation).dump(2) << "\n";
    else
        std::cout << sanagent::agent::to_text(observation);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "observe") return cmd_observe(args);
    if (cmd == "version" || cmd == "--version") {
        std::cout << "sanctl " << SANAGENT_VERSION << "\n";
        return 0;
    }
    std::cerr << "sanctl: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
}
