// The daemon's log: stderr, or the journal with structured fields (OBJECT=,
// STEP=) when stderr is connected to it (JOURNAL_STREAM names stderr's
// device:inode), so a line is never written twice.
#pragma once

#include <string>

namespace sanagent::agent {

class DaemonLog {
public:
    DaemonLog();
    enum class Level { error = 3, warning = 4, info = 6 };
    void write(Level level, const std::string& message, const std::string& object = {},
               const std::string& step = {}) const;
    void info(const std::string& message) const { write(Level::info, message); }
    void warning(const std::string& message) const { write(Level::warning, message); }
    void error(const std::string& message) const { write(Level::error, message); }

private:
    bool journal_ = false;
};

}  // namespace sanagent::agent
