// lio_apply: drives the configfs library's target planner from a JSON spec, so
// lab cases can prove plan/apply/remove on the real kernel before the agent's
// target module composes the same calls. Not installed; test use only (the
// spec file carries CHAP secrets inline, which sanagent's config never does).
//
//   lio_apply [--root DIR] plan|apply|remove SPEC.json
//
// Prints each op (secrets redacted) and "ops: N, configfs writes: M".
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "sanagent/configfs/target_plan.h"

using namespace sanagent::configfs;

namespace {

TargetSpec parse_spec(const nlohmann::json& j) {
    TargetSpec spec;
    spec.iqn = j.at("iqn");
    const auto& s = j.at("storage");
    spec.storage.plugin = s.value("plugin", "iblock");
    spec.storage.name = s.at("name");
    spec.storage.device = s.at("device");
    spec.storage.size_bytes = s.value("size_bytes", 0ull);
    spec.storage.serial = s.value("serial", "");
    spec.storage.thin = s.value("thin", true);
    spec.portals = j.value("portals", std::vector<std::string>{});
    for (const auto& a : j.value("acls", nlohmann::json::array())) {
        AclSpec acl{a.at("iqn"), std::nullopt};
        if (a.contains("chap")) {
            const auto& c = a["chap"];
            acl.chap = ChapSpec{c.value("userid", ""), c.value("password", ""), c.value("mutual_userid", ""),
                                c.value("mutual_password", "")};
        }
        spec.acls.push_back(std::move(acl));
    }
    return spec;
}

}  // namespace

int main(int argc, char** argv) {
    std::string root = "/sys/kernel/config/target";
    int i = 1;
    if (argc > 2 && std::string(argv[1]) == "--root") {
        root = argv[2];
        i = 3;
    }
    if (argc - i != 2) {
        std::cerr << "usage: lio_apply [--root DIR] plan|apply|remove SPEC.json\n";
        return 2;
    }
    const std::string action = argv[i];
    std::ifstream in(argv[i + 1]);
    auto json = nlohmann::json::parse(in, nullptr, false);
    if (json.is_discarded()) {
        std::cerr << "lio_apply: " << argv[i + 1] << ": not JSON\n";
        return 2;
    }
    TargetSpec spec = parse_spec(json);
    ConfigfsTree tree(root);
    auto observed = observe_lio(tree);
    auto ops = action == "remove" ? plan_remove_target(spec.iqn, spec.storage, observed) : plan_target(spec, observed);
    for (const auto& op : ops) std::cout << op.describe() << "\n";
    if (action != "plan") {
        auto st = apply_ops(tree, ops, "target " + spec.iqn);
        if (!st) {
            std::cerr << "lio_apply: " << st.error().message << "\n";
            std::cout << "ops: " << ops.size() << ", configfs writes: " << tree.mutations() << "\n";
            return 1;
        }
    }
    std::cout << "ops: " << ops.size() << ", configfs writes: " << tree.mutations() << "\n";
    return 0;
}
