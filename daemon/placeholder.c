/* placeholder until the module lands */
int twill_placeholder_daemon(void);
int twill_placeholder_daemon(void) { return 0; }
