"""Reading the upstreams, server side: the one client for `file://` and HTTP(S) (one retry
policy, the system's CA bundle), the mirror map, a PEP 691 index, GitHub's release list,
nodejs.org's dist index. May import lock/ and core/."""
