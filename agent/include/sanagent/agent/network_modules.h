// The storage network modules: `bond` ([bond.NAME]: a bond made and kept by
// sanagent) and `link` ([link.NAME]: a plain interface the config names, whose
// MTU, description and addresses sanagent keeps). Both read the namespace with
// one link dump, one bond dump and one address dump per observe, and change it
// through netlink/ (no `ip`).
//
// Safety rules kept here (the "disallow unplug" practice):
// - a port that is in another bond or bridge, or that carries an address of
//   its own (the management address, say), is never enslaved;
// - a bond whose addresses serve LIO portals is not rebuilt (a mode change
//   takes it down) while the portals exist;
// - a bond of the same name that sanagent did not make is foreign: reported,
//   never touched.
#pragma once

#include <filesystem>
#include <memory>

#include "sanagent/agent/module.h"
#include "sanagent/netlink/address.h"
#include "sanagent/netlink/bond.h"

namespace sanagent::agent {

struct NetworkView {
    std::vector<netlink::LinkState> links;
    std::vector<netlink::BondState> bonds;
    std::vector<netlink::AddressState> addresses;
};

// One rtnetlink socket, opened on first use, shared by the network modules.
class NetlinkSession {
public:
    Result<netlink::NetlinkSocket*> socket();
    Result<NetworkView> read();

private:
    std::optional<netlink::NetlinkSocket> socket_;
};

class BondModule final : public Module {
public:
    BondModule(std::shared_ptr<NetlinkSession> session, std::filesystem::path target_root)
        : session_(std::move(session)), target_root_(std::move(target_root)) {}

    std::string_view name() const override { return "bond"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    std::shared_ptr<NetlinkSession> session_;
    std::filesystem::path target_root_;
    NetworkView view_;
};

class LinkModule final : public Module {
public:
    explicit LinkModule(std::shared_ptr<NetlinkSession> session) : session_(std::move(session)) {}

    std::string_view name() const override { return "link"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    std::shared_ptr<NetlinkSession> session_;
    NetworkView view_;
};

}  // namespace sanagent::agent
