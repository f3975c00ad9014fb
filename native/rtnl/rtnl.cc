#include "../modules.h"
namespace nm {
void InitRtnl(Napi::Env, Napi::Object) {}
}  // namespace nm
