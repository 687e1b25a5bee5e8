#include "daemon/daemon_log.h"

#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace sanagent::agent {

DaemonLog::DaemonLog() {
    // systemd.exec(5): JOURNAL_STREAM is "device:inode" of the stream it connected.
    const char* stream = std::getenv("JOURNAL_STREAM");
    struct stat st {};
    unsigned long dev = 0, ino = 0;
    if (stream && std::sscanf(stream, "%lu:%lu", &dev, &ino) == 2 && ::fstat(STDERR_FILENO, &st) == 0)
        journal_ = st.st_dev == dev && st.st_ino == ino;
}

void DaemonLog::write(Level level, const std::string& message, const std::string& object,
                      const std::string& step) const {
    if (journal_) {
        sd_journal_send("MESSAGE=%s", message.c_str(), "PRIORITY=%i", static_cast<int>(level), "OBJECT=%s",
                        object.c_str(), "STEP=%s", step.c_str(), "SYSLOG_IDENTIFIER=sanagentd", nullptr);
        return;
    }
    std::string line = "sanagentd: ";
    if (level == Level::error) line += "error: ";
    if (level == Level::warning) line += "warning: ";
    if (!object.empty()) line += object + ": ";
    if (!step.empty()) line += step + ": ";
    std::cerr << line << message << "\n" << std::flush;
}

}  // namespace sanagent::agent
