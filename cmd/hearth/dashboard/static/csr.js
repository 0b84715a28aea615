// csr.js makes a participant's key and certificate signing request in the
// browser, so that the private key never reaches the dashboard: an Ed25519
// key pair from WebCrypto, a PKCS #10 CertificationRequest (RFC 2986) built
// here in DER, signed with that key, put into the page's CSR field; the
// private key is offered only as a download, key.pem (PKCS #8, as
// `hearth cert request` writes it), which the user puts in the kit folder.
// Nothing here talks to the network (the page's CSP has no connect-src).
//
// The request is the one bus/pki.NewCSR makes for the same identity, hosts
// and key, byte for byte (Ed25519 signatures are deterministic); the
// dashboard's tests compare them. The subject is Identity.Subject's, in the
// order Go's pkix.Name.ToRDNSequence writes it: O=org, OU=kind, CN=name,
// then title=role (2.5.4.12) for an admin; one attribute per RDN; a string
// is a PrintableString when all its characters allow it, else a
// UTF8String, as encoding/asn1 chooses. Hosts go into a subjectAltName
// extension request, DNS names first, then IP addresses (IPv4 in 4 bytes),
// as NewCSR splits them.
//
// A page offers it with one element (hidden until this script shows it, so
// a browser without it sees only the paste field):
//
//	<div class="webcrypto-csr" hidden data-name=NAME data-org=ORG data-kind=KIND
//	     data-role=ROLE data-hosts="h1,h2" data-field=TEXTAREA_ID data-upload=BUTTON_ID>
//	  <button type="button">…</button> <p class="key-status" hidden></p>
//	  <p class="key-result" hidden>… <a download="key.pem">…</a></p>
//	</div>
//
// Under Node (the dashboard's tests) the file exports makeRequest instead.
"use strict";
(function () {
  // DER (X.690): a value is its tag, its length, its contents.
  const TAG = {
    INTEGER: 0x02,
    BIT_STRING: 0x03,
    OCTET_STRING: 0x04,
    OID: 0x06,
    UTF8_STRING: 0x0c,
    PRINTABLE_STRING: 0x13,
    SEQUENCE: 0x30,
    SET: 0x31,
    ATTRIBUTES: 0xa0, // [0] IMPLICIT SET OF Attribute, in CertificationRequestInfo
    SAN_DNS: 0x82, // GeneralName dNSName [2] IA5String
    SAN_IP: 0x87, // GeneralName iPAddress [7] OCTET STRING
  };

  const OID = {
    organization: "2.5.4.10",
    organizationalUnit: "2.5.4.11",
    commonName: "2.5.4.3",
    title: "2.5.4.12", // the role of an admin (bus/pki oidTitle)
    extensionRequest: "1.2.840.113549.1.9.14", // PKCS #9
    subjectAltName: "2.5.29.17",
    ed25519: "1.3.101.112", // RFC 8410: the key's and the signature's algorithm
  };

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  // derLength is the definite length: short form below 128, else 0x80 | the
  // number of big-endian bytes that follow.
  function derLength(n) {
    if (n < 0x80) return Uint8Array.of(n);
    const bytes = [];
    for (; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
    return Uint8Array.of(0x80 | bytes.length, ...bytes);
  }

  function der(tag, ...contents) {
    const body = concat(contents);
    return concat([Uint8Array.of(tag), derLength(body.length), body]);
  }

  // oid encodes a dotted object identifier: the first two arcs as
  // 40*a+b, each arc base 128, high bit set on all but its last byte.
  function oid(dotted) {
    const arcs = dotted.split(".").map(Number);
    const bytes = [];
    for (let a of [40 * arcs[0] + arcs[1], ...arcs.slice(2)]) {
      const arc = [a % 128];
      for (a = Math.floor(a / 128); a > 0; a = Math.floor(a / 128)) arc.unshift(0x80 | a % 128);
      bytes.push(...arc);
    }
    return der(TAG.OID, Uint8Array.from(bytes));
  }

  // text is a directory string as encoding/asn1 marshals a Go string:
  // PrintableString if every character is in its set, else UTF8String.
  function text(s) {
    const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s);
    return der(printable ? TAG.PRINTABLE_STRING : TAG.UTF8_STRING, new TextEncoder().encode(s));
  }

  // subject is Identity.Subject() as a Name: a SEQUENCE of RDNs, each a
  // SET of one AttributeTypeAndValue.
  function subject(id) {
    const rdn = (type, value) => der(TAG.SET, der(TAG.SEQUENCE, oid(type), text(value)));
    const rdns = [rdn(OID.organization, id.org), rdn(OID.organizationalUnit, id.kind), rdn(OID.commonName, id.name)];
    if (id.role) rdns.push(rdn(OID.title, id.role));
    return der(TAG.SEQUENCE, ...rdns);
  }

  // ipBytes parses an IP address as Go's net.ParseIP does (dotted IPv4
  // without leading zeros; IPv6 with at most one "::" and an optional
  // dotted IPv4 tail) and returns what x509 writes: 4 bytes for IPv4 and
  // IPv4-mapped IPv6, else 16; null for anything else (a DNS name).
  function ipBytes(s) {
    const v4 = (t) => {
      const parts = t.split(".");
      if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) < 256)) return null;
      return parts.map(Number);
    };
    const four = v4(s);
    if (four) return Uint8Array.from(four);
    if (!s.includes(":")) return null;
    const halves = s.split("::");
    if (halves.length > 2) return null;
    const groups = (h) => {
      if (h === "") return [];
      const out = [];
      const fields = h.split(":");
      for (const [i, f] of fields.entries()) {
        if (i === fields.length - 1 && f.includes(".")) {
          const tail = v4(f);
          if (!tail) return null;
          out.push(tail[0] * 256 + tail[1], tail[2] * 256 + tail[3]);
        } else if (/^[0-9A-Fa-f]{1,4}$/.test(f)) {
          out.push(parseInt(f, 16));
        } else {
          return null;
        }
      }
      return out;
    };
    const head = groups(halves[0]);
    const tail = halves.length === 2 ? groups(halves[1]) : [];
    if (!head || !tail) return null;
    const missing = 8 - head.length - tail.length;
    if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
    const words = [...head, ...new Array(missing).fill(0), ...tail];
    const bytes = Uint8Array.from(words.flatMap((w) => [w >> 8, w & 0xff]));
    const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
    return mapped ? bytes.slice(12) : bytes;
  }

  // attributes is the [0] SET of CertificationRequestInfo: empty without
  // hosts, else one extensionRequest holding a subjectAltName extension.
  function attributes(hosts) {
    const dns = [];
    const ips = [];
    for (const h of hosts) {
      const ip = ipBytes(h);
      if (ip) ips.push(der(TAG.SAN_IP, ip));
      else dns.push(der(TAG.SAN_DNS, new TextEncoder().encode(h)));
    }
    if (dns.length + ips.length === 0) return der(TAG.ATTRIBUTES);
    const san = der(TAG.SEQUENCE, oid(OID.subjectAltName), der(TAG.OCTET_STRING, der(TAG.SEQUENCE, ...dns, ...ips)));
    return der(TAG.ATTRIBUTES, der(TAG.SEQUENCE, oid(OID.extensionRequest), der(TAG.SET, der(TAG.SEQUENCE, san))));
  }

  // pem wraps der in PEM armour, 64 characters a line, as Go's pem.Encode.
  function pem(type, bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    const lines = btoa(bin).match(/.{1,64}/g) || [];
    return `-----BEGIN ${type}-----\n${lines.join("\n")}\n-----END ${type}-----\n`;
  }

  // The names bus/pki accepts (ValidName); the dashboard checks again.
  const namePattern = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;

  // makeRequest makes an Ed25519 key and the request for id ({name, org,
  // kind, role}) and hosts; it returns {csr, key}, both PEM.
  async function makeRequest(id, hosts) {
    for (const field of ["name", "org"]) {
      if (!namePattern.test(id[field] || "")) throw new Error(`invalid ${field} ${JSON.stringify(id[field])}`);
    }
    if (!["site", "aggregator", "admin"].includes(id.kind)) throw new Error(`invalid kind ${JSON.stringify(id.kind)}`);
    if ((id.kind === "admin") !== Boolean(id.role)) throw new Error("exactly admins carry a role");
    const subtle = globalThis.crypto.subtle;
    const pair = await subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    // The SubjectPublicKeyInfo as WebCrypto exports it is what x509 writes:
    // SEQUENCE { SEQUENCE { 1.3.101.112 }, BIT STRING (0 unused bits, key) }.
    const spki = new Uint8Array(await subtle.exportKey("spki", pair.publicKey));
    const info = der(TAG.SEQUENCE, der(TAG.INTEGER, Uint8Array.of(0)), subject(id), spki, attributes(hosts));
    const signature = new Uint8Array(await subtle.sign({ name: "Ed25519" }, pair.privateKey, info));
    const request = der(TAG.SEQUENCE, info, der(TAG.SEQUENCE, oid(OID.ed25519)), der(TAG.BIT_STRING, Uint8Array.of(0), signature));
    const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
    return { csr: pem("CERTIFICATE REQUEST", request), key: pem("PRIVATE KEY", pkcs8) };
  }

  if (typeof module === "object" && module.exports) {
    module.exports = { makeRequest };
    return;
  }

  // bind wires one .webcrypto-csr element: its button makes the key and
  // request (once per page view), fills the CSR field, offers key.pem, and
  // keeps the upload button disabled until the key has been saved (a
  // certificate for a key that is lost would take the name for good: names
  // are never reused).
  function bind(box) {
    const button = box.querySelector("button");
    const result = box.querySelector(".key-result");
    const link = box.querySelector("a[download]");
    const status = box.querySelector(".key-status");
    const field = document.getElementById(box.dataset.field);
    const upload = document.getElementById(box.dataset.upload);
    const id = { name: box.dataset.name, org: box.dataset.org, kind: box.dataset.kind, role: box.dataset.role || "" };
    const hosts = (box.dataset.hosts || "").split(",").map((h) => h.trim()).filter(Boolean);
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.hidden = false;
      status.textContent = "Making the key…";
      try {
        const made = await makeRequest(id, hosts);
        field.value = made.csr;
        link.href = URL.createObjectURL(new Blob([made.key], { type: "application/x-pem-file" }));
        result.hidden = false;
        upload.disabled = true;
        status.textContent = "Save key.pem first: the upload waits for it.";
        link.addEventListener("click", () => {
          upload.disabled = false;
          status.textContent = "Key saved? Now upload the request.";
        }, { once: true });
      } catch (e) {
        status.textContent = `This browser could not make the key: ${e.message}. Use hearth cert request instead.`;
        button.disabled = false;
      }
    });
    box.hidden = false;
  }

  function bindAll() {
    if (!globalThis.crypto || !globalThis.crypto.subtle) return; // not a secure context: the paste field stays
    document.querySelectorAll(".webcrypto-csr").forEach(bind);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bindAll);
  else bindAll();
})();
