#include "../modules.h"
namespace nm {
void InitNft(Napi::Env, Napi::Object) {}
}  // namespace nm
