/* placeholder until the module lands */
int twill_placeholder_ctl(void);
int twill_placeholder_ctl(void) { return 0; }
