#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: db_env
short_description: Write the WhatsApp Business API client's C(db.env) and check its database login
version_added: 0.1.0
description:
  - Writes the C(db.env) file that the client's compose files read with C(env_file), holding the
    seven documented variables C(WA_DB_ENGINE), C(WA_DB_HOSTNAME), C(WA_DB_PORT), C(WA_DB_USERNAME),
    C(WA_DB_PASSWORD), C(WA_DB_NAME_PREFIX) and C(WA_DB_CONNECTION_IDLE_TIMEOUT), and, when asked for,
    the client's TLS variables C(WA_DB_SSL_CA), C(WA_DB_SSL_CERT) and C(WA_DB_SSL_KEY).
  - The file is written atomically with owner, group and mode (default V(0600), as it holds the
    database password). A second run with the same input changes nothing.
  - With O(validate_connection=true) the module first logs in to the database server with those
    credentials (PyMySQL or psycopg2), reports the server version and whether the user holds what
    the client needs (Select, Insert, Update, Delete, Create, Alter, Index, Drop). An unreachable
    server, a refused login and missing privileges each fail with their own message, and the file
    is then left as it was.
  - Bad input (a port out of range, a database name prefix that cannot start a database name, an
    idle timeout with PostgreSQL, a value that compose would cut or read differently, a mode that
    lets others read the file, a symbolic link at O(path)...) fails before anything is touched, in
    check mode too, with a message that names the option and never shows the password.
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Computes the change and the diff and, with O(validate_connection), still logs in (read-only).
      - When the database driver is not installed yet (a dry run on a fresh host, before the task
        that installs it has run), the login is not tried; a warning says so and RV(connection)
        has RV(connection.checked=false) and its RV(connection.reason).
  diff_mode:
    support: full
    details:
      - Shows the file before and after, with the password masked (a changed password reads C(******** (changed))).
      - Only the managed variables are shown. Every other line of an existing file (comments, other variables)
        is replaced by a masked placeholder line, as it may hold a secret; so is a managed value that
        db_env would refuse as input.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  path:
    description:
      - Path of the C(db.env) file. Its directory must exist.
      - A symbolic link at this path is refused (the module neither follows nor replaces it), as are
        a directory and anything else that is not a regular file. Give the path of the file itself.
    type: path
    required: true
    aliases: [dest]
  state:
    description:
      - V(present) writes the file, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  engine:
    description:
      - Database engine, written as C(WA_DB_ENGINE=MYSQL) or C(WA_DB_ENGINE=PGSQL).
      - Required when O(state=present).
    type: str
    choices: [mysql, postgresql]
  hostname:
    description:
      - Host name or IP address of the database server, as the client containers reach it.
      - A host name (letters, digits, C(-) and C(.), labels of at most 63 characters), a dotted-quad
        IPv4 address without leading zeros, or an IPv6 address without brackets or zone index.
      - Required when O(state=present).
    type: str
  port:
    description:
      - TCP port of the database server (1-65535).
      - Defaults to V(3306) for O(engine=mysql) and V(5432) for O(engine=postgresql).
    type: int
  username:
    description:
      - Database user the client logs in as. Required when O(state=present).
      - The same characters as in O(password) are refused.
    type: str
  password:
    description:
      - Password of O(username). Never shown in output, diffs or messages.
      - Must not contain quotes, backslashes, C($), line breaks of any kind (also the ones
        C(str.splitlines) splits on, such as U+2028, U+2029, U+0085, C(\x0b), C(\x0c), C(\x1c)-C(\x1e))
        or other control characters, nor a C(#) right after a space, tab or other whitespace (compose
        reads that as the start of an inline comment and cuts the value there), nor start or end with
        whitespace, because compose v1 and v2 would read the value differently or cut it.
      - Required when O(state=present).
    type: str
  name_prefix:
    description:
      - Prefix of every database the client creates (C(WA_DB_NAME_PREFIX)), so that several
        clusters can share one database server. Letters, digits and underscores, at most 32.
      - Omitted from the file when not set.
    type: str
  connection_idle_timeout:
    description:
      - Milliseconds after which the client closes an idle MySQL connection
        (C(WA_DB_CONNECTION_IDLE_TIMEOUT)); at least 1000.
      - MySQL only. Setting it with O(engine=postgresql) is an error. With O(engine=mysql) it
        defaults to V(180000), the value of Meta's C(db.env).
    type: int
  ssl_ca:
    description:
      - Path of the PEM file with the certificate authority that signed the database server's
        certificate, as the client containers see it (C(WA_DB_SSL_CA)). The client then connects with
        TLS and verifies the server's certificate and host name (O(hostname) must be in the certificate).
      - An absolute path inside the containers; the file must be mounted there (it is not looked for on
        the managed host). The same characters as in O(password) are refused.
      - Omitted from the file when not set.
    type: str
  ssl_cert:
    description:
      - Path of the client's PEM certificate, as the client containers see it (C(WA_DB_SSL_CERT)), for a
        server that asks for one. Goes together with O(ssl_key).
      - Without O(ssl_ca) the connection is encrypted but the server is not verified.
      - An absolute path inside the containers, as for O(ssl_ca). Omitted from the file when not set.
    type: str
  ssl_key:
    description:
      - Path of the private key of O(ssl_cert), as the client containers see it (C(WA_DB_SSL_KEY)).
        Goes together with O(ssl_cert).
      - An absolute path inside the containers, as for O(ssl_ca); the value is a path, not the key, so it is
        shown in diffs and results. PostgreSQL clients refuse a key file that others or the group may read
        (mode V(0600), or V(0640) when owned by root).
      - Omitted from the file when not set.
    type: str
  owner:
    description:
      - Owner of the file (name or uid). Defaults to the user running the module.
    type: str
  group:
    description:
      - Group of the file (name or gid). Defaults to the user's primary group.
    type: str
  mode:
    description:
      - Mode of the file, an octal string such as V('0600') (three octal digits, optionally after a
        leading V(0)). Quote it in YAML.
      - A number is refused with a message to quote it; unquoted in YAML, V(644) is the decimal 644
        (octal 1204) and V(0600) means octal or decimal depending on the YAML version.
      - As the file holds the database password, others may get no access and the group at most read
        access, so V('0600') or V('0400'), or V('0640') / V('0440') to let the file's group read it. Any
        mode with a bit for others, group write or execute, or a setuid, setgid or sticky bit is refused.
      - V(null) means the default.
    type: raw
    default: '0600'
  validate_connection:
    description:
      - Log in to the database server with these credentials before writing, and fail (leaving the
        file as it was) when the server is unreachable, the login is refused or the user lacks a
        privilege the client needs.
      - On MySQL the privileges must be held on C(*.*) or on a database-name pattern that covers
        every name starting with O(name_prefix). On PostgreSQL the user needs CREATEDB (or
        SUPERUSER), because the client owns the databases it creates.
      - Needs PyMySQL (MySQL) or psycopg2 (PostgreSQL) on the managed host.
      - The check logs in from the managed host without the O(ssl_ca), O(ssl_cert) and O(ssl_key) files
        (they are paths inside the containers), so it fails against a server that accepts TLS logins only.
    type: bool
    default: false
  connect_timeout:
    description:
      - Seconds to wait for the database server when O(validate_connection=true), from V(1) to V(3600).
      - Checked with every O(state=present) run, also without O(validate_connection).
    type: int
    default: 10
requirements:
  - PyMySQL (only for O(validate_connection) with O(engine=mysql))
  - psycopg2 (only for O(validate_connection) with O(engine=postgresql))
notes:
  - The file starts with one comment line that says it is managed; any other content of an
    existing file (comments, unknown variables) is replaced.
  - The file is read and written with C(\n) line ends only. Other lines of an existing file are never
    returned or shown, only the managed variables (RV(variables), RV(changed_keys), the diff).
seealso:
  - module: wabiz.cluster.compose_stack
"""

EXAMPLES = r"""
- name: Write db.env for a MySQL server and check the login first
  wabiz.cluster.db_env:
    path: /opt/whatsapp/db.env
    engine: mysql
    hostname: db.example.internal
    username: whatsapp
    password: "{{ vault_wa_db_password }}"
    name_prefix: wa_prod_
    connection_idle_timeout: 180000
    validate_connection: true

- name: PostgreSQL (no idle timeout), file owned by the deploy user
  wabiz.cluster.db_env:
    path: /srv/wa/db.env
    engine: postgresql
    hostname: 10.0.3.10
    port: 5432
    username: whatsapp
    password: "{{ vault_wa_db_password }}"
    owner: deploy
    group: deploy
    mode: "0600"

- name: TLS to the database, the PEM files mounted into the containers at /opt/whatsapp/certs
  wabiz.cluster.db_env:
    path: /opt/whatsapp/db.env
    engine: mysql
    hostname: db.example.internal
    username: whatsapp
    password: "{{ vault_wa_db_password }}"
    ssl_ca: /opt/whatsapp/certs/db-ca.pem
    ssl_cert: /opt/whatsapp/certs/client.pem
    ssl_key: /opt/whatsapp/certs/client.key

- name: Remove the file when a host leaves the cluster
  wabiz.cluster.db_env:
    path: /opt/whatsapp/db.env
    state: absent
"""

RETURN = r"""
path:
  description: Path of the file.
  returned: always
  type: str
  sample: /opt/whatsapp/db.env
variables:
  description:
    - The managed variables the file holds after the run (before it when O(state=absent)), password masked.
    - Other variables of an existing file are left out; a managed value that db_env would refuse as input
      (a hand-edited file) is replaced by a masked placeholder.
  returned: always
  type: dict
  sample:
    WA_DB_ENGINE: MYSQL
    WA_DB_HOSTNAME: db.example.internal
    WA_DB_PORT: "3306"
    WA_DB_USERNAME: whatsapp
    WA_DB_PASSWORD: "********"
    WA_DB_NAME_PREFIX: wa_prod_
    WA_DB_CONNECTION_IDLE_TIMEOUT: "180000"
changed_keys:
  description:
    - Managed variables whose value was (or, in check mode, would be) added, changed or removed.
    - Other lines an existing file loses are not listed (but do make the task changed).
  returned: always
  type: list
  elements: str
  sample: [WA_DB_HOSTNAME, WA_DB_PASSWORD]
connection:
  description: What O(validate_connection) found. Also returned on failure, as far as it got.
  returned: when O(validate_connection=true)
  type: dict
  contains:
    server_version:
      description: Version string of the database server.
      type: str
      sample: 10.11.14-MariaDB-0+deb12u2
    account:
      description: The account the server matched the login to.
      type: str
      sample: whatsapp@%
    privileges:
      description: Each privilege the client needs and whether the user holds it.
      type: dict
      sample: {Select: true, Insert: true, Update: true, Delete: true, Create: true, Alter: true, Index: true, Drop: false}
    missing:
      description: The privileges the user lacks.
      type: list
      elements: str
      sample: [Drop]
    scope:
      description: Where the privileges were looked for.
      type: str
      sample: on *.* or on databases matching `wa\_prod\_%`
    checked:
      description: V(false) when, in check mode, the login was not tried because the driver is missing.
      type: bool
      sample: false
    reason:
      description: Why the login was not tried (with RV(connection.checked=false)).
      type: str
      sample: PyMySQL is not installed yet
failure_kind:
  description: On failure of O(validate_connection), which check failed.
  returned: failure
  type: str
  sample: login_refused
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wabiz.cluster.plugins.module_utils._dbenv import run_db_env


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True, aliases=["dest"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            engine=dict(type="str", choices=["mysql", "postgresql"]),
            hostname=dict(type="str"),
            port=dict(type="int"),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            name_prefix=dict(type="str"),
            connection_idle_timeout=dict(type="int"),
            ssl_ca=dict(type="str"),
            ssl_cert=dict(type="str"),
            ssl_key=dict(type="str", no_log=False),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0600"),
            validate_connection=dict(type="bool", default=False),
            connect_timeout=dict(type="int", default=10),
        ),
        required_if=[("state", "present", ("engine", "hostname", "username", "password"))],
        required_together=[("ssl_cert", "ssl_key")],
        supports_check_mode=True,
    )
    module.exit_json(**run_db_env(module))


if __name__ == "__main__":
    main()
