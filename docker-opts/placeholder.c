/* placeholder until the module lands */
int twill_placeholder_docker_opts(void);
int twill_placeholder_docker_opts(void) { return 0; }
