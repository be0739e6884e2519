/* Built against an installed redkit: the header and the library it loads agree on the version. */
#include <redkit.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    printf("redkit %s\n", rk_version());
    return strcmp(rk_version(), RK_VERSION_STRING) != 0;
}
