#define BOOST_TEST_MODULE common
#include <boost/test/unit_test.hpp>

#include "sanagent/result.h"

using sanagent::Error;
using sanagent::Result;
using sanagent::Status;

BOOST_AUTO_TEST_CASE(result_holds_value_or_error) {
    Result<int> good = 42;
    BOOST_TEST(good.ok());
    BOOST_TEST(*good == 42);
    Result<int> bad = Error{ENOENT, "mkdir x"};
    BOOST_TEST(!bad.ok());
    BOOST_TEST(bad.error().code == ENOENT);
}

BOOST_AUTO_TEST_CASE(context_prefixes_what_was_being_done) {
    Error e = sanagent::errno_error(EEXIST, "mkdir /t/acls/iqn.x");
    Error outer = e.context("creating ACL iqn.x on target iqn.y");
    BOOST_TEST(outer.message == "creating ACL iqn.x on target iqn.y: mkdir /t/acls/iqn.x: File exists");
    BOOST_TEST(outer.code == EEXIST);
}

BOOST_AUTO_TEST_CASE(status_default_is_success) {
    Status s;
    BOOST_TEST(s.ok());
    Status f = Error{EIO, "write"};
    BOOST_TEST(!f.ok());
}
