// A temporary config/state directory for agent tests, removed afterwards.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace sanagent::agent::test {

struct TempDir {
    std::filesystem::path root;
    TempDir() {
        static int counter = 0;
        root = std::filesystem::temp_directory_path() /
               ("sanagent-agent-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(root);
        std::filesystem::create_directories(root / "conf.d");
    }
    ~TempDir() { std::filesystem::remove_all(root); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string write(const std::string& relative, const std::string& text) {
        auto path = root / relative;
        std::filesystem::create_directories(path.parent_path());
        std::ofstream(path) << text;
        return path.string();
    }
};

}  // namespace sanagent::agent::test
