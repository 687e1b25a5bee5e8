#include "sanagent/agent/units.h"

#include <boost/test/unit_test.hpp>

using namespace sanagent::agent;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(units)

BOOST_AUTO_TEST_CASE(sizes_use_binary_units) {
    BOOST_TEST(*parse_size("0") == 0u);
    BOOST_TEST(*parse_size("4096") == 4096u);
    BOOST_TEST(*parse_size("512M") == 512ull << 20);
    BOOST_TEST(*parse_size("10G") == 10ull << 30);
    BOOST_TEST(*parse_size("10GiB") == 10ull << 30);
    BOOST_TEST(*parse_size("1T") == 1ull << 40);
    BOOST_TEST(*parse_size("2K") == 2048u);
    BOOST_TEST(*parse_size("7B") == 7u);
    BOOST_TEST(*parse_size("16383P") == 16383ull << 50);
}

BOOST_AUTO_TEST_CASE(sizes_reject_what_is_not_exact) {
    for (const char* bad : {"", "G", "1.5G", "-1G", "10g", "10 G", "10GB2", "10X", " 10G", "10Gi", "16384P",
                            "99999999999999999999", "0x10"})
        BOOST_TEST(!parse_size(bad).ok(), bad);
    BOOST_TEST(parse_size("16384P").error().code == ERANGE);
    BOOST_TEST(parse_size("1.5G").error().message.find("binary units") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(durations_need_a_unit) {
    BOOST_TEST(parse_duration("100ms")->count() == 100);
    BOOST_TEST(parse_duration("5s")->count() == 5000);
    BOOST_TEST(parse_duration("2m")->count() == 120000);
    BOOST_TEST(parse_duration("1h")->count() == 3600000);
    BOOST_TEST(parse_duration("0s")->count() == 0);
    for (const char* bad :
         {"", "5", "s", "5 s", "1.5s", "-1s", "5S", "5sec", "9223372036854775808ms", "9999999999999999h"})
        BOOST_TEST(!parse_duration(bad).ok(), bad);
}

BOOST_AUTO_TEST_CASE(percentages_are_whole_and_bounded) {
    BOOST_TEST(*parse_percent("80%") == 80);
    BOOST_TEST(*parse_percent("0%") == 0);
    BOOST_TEST(*parse_percent("100%") == 100);
    for (const char* bad : {"", "80", "101%", "%", "80.5%", "-1%", "80 %", "80%%"})
        BOOST_TEST(!parse_percent(bad).ok(), bad);
}

BOOST_AUTO_TEST_CASE(formatting_round_trips) {
    BOOST_TEST(format_size(10ull << 30) == "10G");
    BOOST_TEST(format_size(1536) == "1536");
    BOOST_TEST(format_size(0) == "0");
    BOOST_TEST(format_duration(60s) == "1m");
    BOOST_TEST(format_duration(1500ms) == "1500ms");
    BOOST_TEST(format_duration(5s) == "5s");
    for (std::uint64_t v : {1ull, 1024ull, 3ull << 20, 5ull << 40, 12345ull})
        BOOST_TEST(*parse_size(format_size(v)) == v);
}

BOOST_AUTO_TEST_CASE(safe_names) {
    BOOST_TEST(is_safe_name("xpsp2-01"));
    BOOST_TEST(is_safe_name("v8.1-01"));
    BOOST_TEST(is_safe_name("0abc"));
    BOOST_TEST(is_safe_name(std::string(63, 'a')));
    for (std::string bad : {std::string(), std::string(64, 'a'), std::string("-a"), std::string(".a"), std::string("A"),
                            std::string("a/b"), std::string("a b"), std::string("a_b"), std::string("a\nb"),
                            std::string("a:b"), std::string("..")})
        BOOST_TEST(!is_safe_name(bad), bad);
}

BOOST_AUTO_TEST_SUITE_END()
