// SPDX-License-Identifier: MIT
// weft.h must compile alone as C++ and link without name mangling.
#include <weft.h>

#include <cstdio>
#include <cstring>

int main()
{
	char want[32];
	weft_config cfg;

	std::snprintf(want, sizeof(want), "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
		      WEFT_VERSION_PATCH);
	if (std::strcmp(want, weft_version()) != 0)
		return 1;
	weft_config_init(&cfg);
	weft_call call = { nullptr, nullptr, 0 };
	(void)call;
	return weft_self() == nullptr ? 0 : 1;
}
