#include <stdio.h>
int main(void) { puts("mailferry: work in progress"); return 0; }
