"""Evidence on the raw upload, before any pixel is decoded: C2PA Content Credentials, IPTC DigitalSourceType in
XMP, generator metadata (A1111, ComfyUI, ...), invisible watermarks. Each reader returns EvidenceItems."""
