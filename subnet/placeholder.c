/* placeholder until the module lands */
int twill_placeholder_subnet(void);
int twill_placeholder_subnet(void) { return 0; }
