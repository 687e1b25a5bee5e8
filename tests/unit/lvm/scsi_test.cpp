// The SCSI and LVM decoders over byte images shaped like what LIO returns and
// lvm2 writes (layouts from SPC-4 and lvm2's format_text/layout.h).
#include "sanagent/lvm/scsi.h"

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "sanagent/lvm/iscsi_probe.h"

using namespace sanagent;
using namespace sanagent::lvm;

namespace {

std::vector<std::uint8_t> bytes(std::initializer_list<int> list) {
    std::vector<std::uint8_t> v;
    for (int b : list) v.push_back(static_cast<std::uint8_t>(b));
    return v;
}

void append(std::vector<std::uint8_t>& v, const std::string& s) {
    v.insert(v.end(), s.begin(), s.end());
}

void put_le(std::vector<std::uint8_t>& v, std::size_t at, std::uint64_t value, int n) {
    for (int i = 0; i < n; ++i) v[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(value >> (8 * i));
}

// VPD 0x83 as LIO builds it for an iblock device with unit serial
// 5a0b3c4d-5e6f-7081: NAA IEEE registered extended (company 0x001405), T10
// vendor id, then target-port designators (association 1) that must be skipped.
std::vector<std::uint8_t> lio_vpd83() {
    std::vector<std::uint8_t> des = bytes({0x01, 0x03, 0x00, 0x10, 0x60, 0x01, 0x40, 0x55, 0xa0, 0xb3,
                                           0xc4, 0xd5, 0xe6, 0xf7, 0x08, 0x10, 0x00, 0x00, 0x00, 0x00});
    auto t10 = bytes({0x02, 0x01, 0x00, 0x18});
    append(t10, "LIO-ORG 5a0b3c4d5e6f7081");
    des.insert(des.end(), t10.begin(), t10.end());
    auto port = bytes({0x61, 0x94, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01});
    des.insert(des.end(), port.begin(), port.end());
    auto page = bytes({0x00, 0x83, 0x00, static_cast<int>(des.size())});
    page.insert(page.end(), des.begin(), des.end());
    return page;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(scsi)

BOOST_AUTO_TEST_CASE(standard_inquiry_of_lio) {
    std::vector<std::uint8_t> d(36, ' ');
    d[0] = 0x00;
    std::memcpy(&d[8], "LIO-ORG ", 8);
    std::memcpy(&d[16], "vol1            ", 16);
    std::memcpy(&d[32], "4.0 ", 4);
    auto inq = parse_standard_inquiry(d);
    BOOST_TEST_REQUIRE(inq.ok());
    BOOST_TEST(inq->vendor == "LIO-ORG");
    BOOST_TEST(inq->product == "vol1");
    BOOST_TEST(inq->revision == "4.0");
    BOOST_TEST(inq->device_type == 0u);
    BOOST_TEST(!parse_standard_inquiry(Bytes(d.data(), 20)).ok());
}

BOOST_AUTO_TEST_CASE(unit_serial) {
    auto d = bytes({0x00, 0x80, 0x00, 0x12});
    append(d, "5a0b3c4d5e6f7081  ");
    auto s = parse_unit_serial(d);
    BOOST_TEST_REQUIRE(s.ok());
    BOOST_TEST(*s == "5a0b3c4d5e6f7081");
    d[1] = 0x83;
    BOOST_TEST(!parse_unit_serial(d).ok());
    auto truncated = bytes({0x00, 0x80, 0x00, 0x40, 'a'});
    BOOST_TEST(!parse_unit_serial(truncated).ok());
}

BOOST_AUTO_TEST_CASE(device_identification_gives_the_naa_scsi_id) {
    auto ids = parse_device_identification(lio_vpd83());
    BOOST_TEST_REQUIRE(ids.ok());
    BOOST_TEST(ids->size() == 3u);
    BOOST_TEST((*ids)[2].association == 1u);
    BOOST_TEST(scsi_id(*ids) == "360014055a0b3c4d5e6f7081000000000");
}

BOOST_AUTO_TEST_CASE(device_identification_falls_back_to_t10) {
    auto page = lio_vpd83();
    page[5] = 0x08;  // the NAA designator becomes a SCSI name string: not an id source
    auto ids = parse_device_identification(page);
    BOOST_TEST_REQUIRE(ids.ok());
    BOOST_TEST(scsi_id(*ids) == "1LIO-ORG_5a0b3c4d5e6f7081");
}

BOOST_AUTO_TEST_CASE(device_identification_rejects_overruns) {
    auto page = lio_vpd83();
    page[7] = 0x40;  // the first designator claims more bytes than the page has
    BOOST_TEST(!parse_device_identification(page).ok());
    page = lio_vpd83();
    page[3] = 0xff;  // the page claims more bytes than were returned
    BOOST_TEST(!parse_device_identification(page).ok());
}

BOOST_AUTO_TEST_CASE(read_capacity16) {
    // 1 GiB in 512-byte blocks: last LBA 2097151.
    auto d = bytes({0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0, 0, 0x02, 0, 0, 0, 0, 0});
    auto c = parse_read_capacity16(d);
    BOOST_TEST_REQUIRE(c.ok());
    BOOST_TEST(c->blocks == 2097152u);
    BOOST_TEST(c->block_size == 512u);
    BOOST_TEST(c->bytes() == 1073741824u);
    d[10] = 0;
    BOOST_TEST(!parse_read_capacity16(d).ok());
}

BOOST_AUTO_TEST_CASE(report_luns) {
    auto d = bytes({0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01, 0, 0, 0, 0, 0, 0});
    auto luns = parse_report_luns(d);
    BOOST_TEST_REQUIRE(luns.ok());
    BOOST_TEST(*luns == (std::vector<int>{0, 1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(lvm_pv_label_and_metadata) {
    // What `pvcreate --metadatasize 10M` writes: the label in sector 1, one
    // data area from 10 MiB + 1 MiB alignment, one metadata area at 4 KiB.
    std::vector<std::uint8_t> head(4096 + 512, 0);
    std::memcpy(&head[512], "LABELONE", 8);
    put_le(head, 512 + 8, 1, 8);
    put_le(head, 512 + 20, 32, 4);
    std::memcpy(&head[512 + 24], "LVM2 001", 8);
    std::memcpy(&head[512 + 32], "AbCdEfGhIjKlMnOpQrStUvWxYz012345", 32);
    std::size_t p = 512 + 32 + 32;
    put_le(head, p, 1073741824, 8);
    put_le(head, p + 8, 11534336, 8);  // data area
    put_le(head, p + 16, 0, 8);
    put_le(head, p + 24, 0, 8);  // end of data areas
    put_le(head, p + 32, 0, 8);
    put_le(head, p + 40, 4096, 8);  // metadata area
    put_le(head, p + 48, 10481664, 8);
    auto label = parse_pv_label(head);
    BOOST_TEST_REQUIRE(label.ok());
    BOOST_TEST_REQUIRE(label->has_value());
    BOOST_TEST((*label)->pv_uuid == "AbCdEfGhIjKlMnOpQrStUvWxYz012345");
    BOOST_TEST((*label)->mda_offset == 4096u);
    BOOST_TEST((*label)->mda_size == 10481664u);

    std::vector<std::uint8_t> mda(512, 0);
    std::memcpy(&mda[4], " LVM2 x[5A%r0N*>", 16);
    put_le(mda, 40, 512, 8);
    put_le(mda, 48, 900, 8);
    auto loc = parse_mda_header(mda);
    BOOST_TEST_REQUIRE(loc.ok());
    BOOST_TEST(loc->offset == 512u);
    BOOST_TEST(loc->size == 900u);
    mda[5] = 'X';
    BOOST_TEST(!parse_mda_header(mda).ok());

    std::vector<std::uint8_t> blank(2048, 0);
    auto none = parse_pv_label(blank);
    BOOST_TEST_REQUIRE(none.ok());
    BOOST_TEST(!none->has_value());
}

BOOST_AUTO_TEST_CASE(vg_metadata_text) {
    const std::string text =
        "VG_XenStorage-2b4c6f0e-7d9a-4e1b-8c3f-0a1b2c3d4e5f {\n"
        "\tid = \"Abc123-Def4-5678\"\n\tseqno = 3\n\tformat = \"lvm2\"\n"
        "\tstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n"
        "\ttags = [\"sanagent\", \"sr_name=vm1\", \"sr_uuid=2b4c6f0e-7d9a-4e1b-8c3f-0a1b2c3d4e5f\"]\n"
        "\textent_size = 8192\n"
        "\tphysical_volumes {\n\t\tpv0 {\n\t\t\ttags = [\"not-the-vg\"]\n\t\t}\n\t}\n}\n";
    auto vg = parse_vg_metadata(text);
    BOOST_TEST_REQUIRE(vg.ok());
    BOOST_TEST(vg->name == "VG_XenStorage-2b4c6f0e-7d9a-4e1b-8c3f-0a1b2c3d4e5f");
    BOOST_TEST(vg->uuid == "Abc123-Def4-5678");
    BOOST_TEST(vg->tags.size() == 3u);
    BOOST_TEST(tag_value(vg->tags, kSrNameTag) == "vm1");
    BOOST_TEST(tag_value(vg->tags, kSrUuidTag) == "2b4c6f0e-7d9a-4e1b-8c3f-0a1b2c3d4e5f");
    BOOST_TEST(!parse_vg_metadata("no braces here").ok());
}

BOOST_AUTO_TEST_CASE(classify_an_empty_lun) {
    std::vector<std::uint8_t> head(256 * 1024, 0);
    auto content = classify_lun(head, 1 << 30, [](std::uint64_t, std::uint64_t) -> Result<std::vector<std::uint8_t>> {
        return Error{EIO, "not expected"};
    });
    BOOST_TEST_REQUIRE(content.ok(), (content.ok() ? "" : content.error().message));
    BOOST_TEST(content->describe() == "empty");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(recorded)

// The first 64 KiB of an SR LUN made in the lab (see tests/fixtures/lvm/README.md).
BOOST_AUTO_TEST_CASE(classify_a_recorded_sr_lun) {
    std::ifstream in(std::string(SANAGENT_FIXTURES) + "/lvm/sr-head.bin", std::ios::binary);
    BOOST_TEST_REQUIRE(in.good());
    std::vector<std::uint8_t> head((std::istreambuf_iterator<char>(in)), {});
    BOOST_TEST_REQUIRE(head.size() == 65536u);
    head.resize(256 * 1024, 0);
    auto content =
        classify_lun(head, 1ull << 30, [&](std::uint64_t off, std::uint64_t len) -> Result<std::vector<std::uint8_t>> {
            if (off + len > head.size()) return Error{EIO, "past the recording"};
            return std::vector<std::uint8_t>(head.begin() + static_cast<std::ptrdiff_t>(off),
                                             head.begin() + static_cast<std::ptrdiff_t>(off + len));
        });
    BOOST_TEST_REQUIRE(content.ok(), (content.ok() ? "" : content.error().message));
    BOOST_TEST(content->describe() == "LVM PV of SR vm1/3da9ff20-dafb-4775-a0aa-03ad89299f98");
}

BOOST_AUTO_TEST_SUITE_END()
