/* placeholder until the module lands */
int twill_placeholder_backends(void);
int twill_placeholder_backends(void) { return 0; }
