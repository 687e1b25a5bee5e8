// Running the tools sanagent drives (lvm, iscsiadm, chronyc): argv vectors
// only, never a shell; every run bounded in time; stdout and stderr kept so a
// failure can say what the tool said.
//
// CommandRunner is the seam: libraries take one by reference, the daemon passes
// SystemCommandRunner, unit tests pass a fake that replays recorded outputs.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent {

struct Command {
    Command() = default;
    explicit Command(std::vector<std::string> args, std::chrono::milliseconds bound = std::chrono::seconds(30))
        : argv(std::move(args)), timeout(bound) {}

    std::vector<std::string> argv;                  // argv[0]: a path, or a name looked up in the system's
                                                    // bin/sbin directories (never the caller's PATH)
    std::chrono::milliseconds timeout{30'000};      // killed (SIGKILL) past this
    std::string stdin_data;                         // written to the child's stdin
    std::vector<std::string> extra_env;             // "NAME=value", added to ours

    // "lvm lvs --reportformat json" for messages; arguments are not secret by
    // contract (secrets go through stdin or files, never argv).
    std::string display() const;
};

struct CommandOutput {
    int exit_code = 0;  // the child's exit status; 128+N when killed by signal N
    std::string out;
    std::string err;
};

class CommandRunner {
public:
    virtual ~CommandRunner() = default;
    // Fails only when the command could not run or timed out; a non-zero exit
    // is a CommandOutput the caller judges (see check_exit()).
    virtual Result<CommandOutput> run(const Command& command) = 0;
};

class SystemCommandRunner final : public CommandRunner {
public:
    Result<CommandOutput> run(const Command& command) override;
};

// Turn a non-zero exit into an Error carrying the tool's last stderr line(s).
Result<CommandOutput> check_exit(const Command& command, Result<CommandOutput> result);

}  // namespace sanagent
