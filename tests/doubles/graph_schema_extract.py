#!/usr/bin/env python3
"""graph_schema_extract.py CSDL COMMIT > graph_schema.json - extract, from
Microsoft's published Graph API description (microsoftgraph/msgraph-metadata,
schemas/v1.0-Prod.csdl), the property names and enum members the Graph
double (graph_double.py) checks requests against, so that its rules are
Microsoft's and not ours. Only the extracted lists are committed
(graph_schema.json), with the source commit named in it; regenerate with

  git -C msgraph-metadata show HEAD:schemas/v1.0-Prod.csdl > /tmp/v1.csdl
  python3 graph_schema_extract.py /tmp/v1.csdl $(git -C msgraph-metadata rev-parse HEAD) \
      > graph_schema.json

Properties of a type include those of its base types (BaseType chain) and
its navigation properties. Standard library only; output is deterministic
(sorted) so that a regeneration shows as a plain diff.
"""
import json, sys
import xml.etree.ElementTree as ET

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ENTITIES = ["message", "mailFolder", "attachment", "fileAttachment", "itemAttachment",
            "referenceAttachment"]
COMPLEX = ["followupFlag", "itemBody", "recipient", "emailAddress", "dateTimeTimeZone",
           "attachmentItem", "internetMessageHeader", "uploadSession"]
ENUMS = ["followupFlagStatus", "importance", "bodyType", "attachmentType",
         "inferenceClassificationType"]


def main():
    path, commit = sys.argv[1], sys.argv[2]
    root = ET.parse(path).getroot()
    types = {}
    enums = {}
    for schema in root.iter(EDM + "Schema"):
        if schema.get("Namespace") != "microsoft.graph":
            continue
        for t in list(schema):
            tag = t.tag[len(EDM):]
            if tag in ("EntityType", "ComplexType"):
                props = [p.get("Name") for p in t if p.tag in (EDM + "Property", EDM + "NavigationProperty")]
                types[t.get("Name")] = {"base": (t.get("BaseType") or "").replace("graph.", ""),
                                        "props": props}
            elif tag == "EnumType":
                enums[t.get("Name")] = [m.get("Name") for m in t if m.tag == EDM + "Member"]

    def all_props(name):
        out = []
        while name:
            t = types[name]
            out += t["props"]
            name = t["base"]
        return sorted(set(out))

    res = {"source": "microsoftgraph/msgraph-metadata schemas/v1.0-Prod.csdl", "commit": commit,
           "types": {n: all_props(n) for n in ENTITIES + COMPLEX},
           "enums": {n: enums[n] for n in ENUMS}}
    json.dump(res, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
