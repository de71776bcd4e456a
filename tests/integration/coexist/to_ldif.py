#!/usr/bin/env python3
"""to_ldif.py EXPORT.csv > users.ldif: the users of a Get-ADUser export as
LDIF entries (objectClass inetOrgPerson + user from ad-lite.schema), in
reverse order so that the test also shows the server's order does not
matter. Non-ASCII values are base64, as LDIF requires."""
import base64
import csv
import sys

def line(attr, value):
    if value.isascii() and not value.startswith((' ', ':', '<')):
        return f"{attr}: {value}"
    return f"{attr}:: {base64.b64encode(value.encode()).decode()}"

print("dn: dc=contoso,dc=com\nobjectClass: dcObject\nobjectClass: organization\n"
      "dc: contoso\no: Contoso\n")
print("dn: ou=users,dc=contoso,dc=com\nobjectClass: organizationalUnit\nou: users\n")
with open(sys.argv[1], encoding="utf-8-sig", newline="") as f:
    rows = list(csv.DictReader(f))
for i, r in reversed(list(enumerate(rows))):
    out = [f"dn: cn=u{i},ou=users,dc=contoso,dc=com", "objectClass: inetOrgPerson",
           "objectClass: user", f"cn: u{i}", f"sn: u{i}"]
    for attr, col in (("sAMAccountName", "SamAccountName"), ("userPrincipalName", "UserPrincipalName"),
                      ("mail", "mail"), ("targetAddress", "targetAddress")):
        if r[col]:
            out.append(line(attr, r[col]))
    for p in r["proxyAddresses"].split(";"):
        if p:
            out.append(line("proxyAddresses", p))
    print("\n".join(out) + "\n")
