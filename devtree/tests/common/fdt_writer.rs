//! A minimal flattened-device-tree writer for synthetic test trees: the cases
//! (multi-level `ranges`, `/chosen` variants, broken structure) that no real
//! tree in the cache shows.

/// Builds a version-17 DTB token by token.
#[derive(Default)]
pub struct Writer {
    structure: Vec<u8>,
    strings: Vec<u8>,
    reservations: Vec<(u64, u64)>,
}

impl Writer {
    /// An empty tree; start with `begin("")` for the root.
    pub fn new() -> Self {
        Self::default()
    }

    fn word(&mut self, w: u32) -> &mut Self {
        self.structure.extend_from_slice(&w.to_be_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }

    /// FDT_BEGIN_NODE `name`.
    pub fn begin(&mut self, name: &str) -> &mut Self {
        self.word(1);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self
    }

    /// FDT_END_NODE.
    pub fn end(&mut self) -> &mut Self {
        self.word(2)
    }

    /// FDT_NOP.
    pub fn nop(&mut self) -> &mut Self {
        self.word(4)
    }

    /// A property with a raw value.
    pub fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let offset = self.string_offset(name);
        self.word(3).word(value.len() as u32).word(offset);
        self.structure.extend_from_slice(value);
        self.pad();
        self
    }

    /// A property of 32-bit cells.
    pub fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let value: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &value)
    }

    /// A string property.
    pub fn string(&mut self, name: &str, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.prop(name, &bytes)
    }

    /// A `/memreserve/` entry.
    pub fn reserve(&mut self, base: u64, size: u64) -> &mut Self {
        self.reservations.push((base, size));
        self
    }

    fn string_offset(&mut self, name: &str) -> u32 {
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        offset
    }

    /// The blob: header, reservations, structure (plus FDT_END), strings.
    pub fn finish(&self) -> Vec<u8> {
        let mut rsv = Vec::new();
        for &(base, size) in self.reservations.iter().chain([&(0, 0)]) {
            rsv.extend_from_slice(&base.to_be_bytes());
            rsv.extend_from_slice(&size.to_be_bytes());
        }
        let mut structure = self.structure.clone();
        structure.extend_from_slice(&9u32.to_be_bytes());
        let rsv_off = 40;
        let struct_off = rsv_off + rsv.len();
        let strings_off = struct_off + structure.len();
        let total = strings_off + self.strings.len();
        let header: [usize; 10] = [
            0xd00d_feed,
            total,
            struct_off,
            strings_off,
            rsv_off,
            17,
            16,
            0,
            self.strings.len(),
            structure.len(),
        ];
        let mut blob: Vec<u8> = header
            .iter()
            .flat_map(|&w| (w as u32).to_be_bytes())
            .collect();
        blob.extend_from_slice(&rsv);
        blob.extend_from_slice(&structure);
        blob.extend_from_slice(&self.strings);
        blob
    }
}

/// A root with `#address-cells = 2`, `#size-cells = 2`, one memory node at
/// 0x40000000 (1 GiB); the caller adds more and closes the root with `end()`.
pub fn virt_like_root() -> Writer {
    let mut w = Writer::new();
    w.begin("")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2])
        .string("model", "synthetic")
        .begin("memory@40000000")
        .string("device_type", "memory")
        .cells("reg", &[0, 0x4000_0000, 0, 0x4000_0000])
        .end();
    w
}
