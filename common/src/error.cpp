#include "sanagent/result.h"

#include <cstring>

namespace sanagent {

Error errno_error(int code, const std::string& what) {
    return Error{code, what + ": " + std::strerror(code)};
}

}  // namespace sanagent
