/* placeholder until the module lands */
int twill_placeholder_ipam(void);
int twill_placeholder_ipam(void) { return 0; }
