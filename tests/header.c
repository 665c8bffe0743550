/* SPDX-License-Identifier: MIT */
/* weft.h must compile alone as C11 -pedantic; the macros must match the library. */
#include <weft.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	char want[32];
	weft_config cfg;

	snprintf(want, sizeof(want), "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
		 WEFT_VERSION_PATCH);
	if (strcmp(want, weft_version()) != 0) {
		fprintf(stderr, "header says %s, library says %s\n", want, weft_version());
		return 1;
	}
	weft_config_init(&cfg);
	return cfg.sq_entries > 0 ? 0 : 1;
}
