//! The compact manifest (`manifest::decode`), as the hyp reads it at boot: from the initrd's
//! `manifest` member when the input is a cpio archive, else the input itself as the text.
//! Seeds: compact manifests (fuzz/seeds/manifest) and the archives pvpack writes (fuzz/run.sh).

#![no_main]

use libfuzzer_sys::fuzz_target;
use manifest::{ARCHIVE_MANIFEST, Manifest, check_image_name, cpio, decode, encode, validate};
use pvhyp_fuzz::is_within;

fuzz_target!(|data: &[u8]| {
    let is_archive = data.starts_with(cpio::MAGIC_NEWC) || data.starts_with(cpio::MAGIC_CRC);
    let text = if is_archive {
        match cpio::find(data, ARCHIVE_MANIFEST) {
            Ok(Some(bytes)) => bytes,
            _ => return,
        }
    } else {
        data
    };
    // The hyp reads a manifest that is not UTF-8 as empty text.
    let text = core::str::from_utf8(text).unwrap_or("");
    match decode(text) {
        Ok(m) => {
            check(&m);
            if is_archive {
                // Where the hyp looks up each image next: inside the archive, or an error.
                for vm in &m.vms {
                    if let Ok(Some(image)) = cpio::find(data, &vm.image) {
                        assert!(is_within(data, image));
                    }
                }
            }
        }
        Err(e) => {
            // The line it names is one of the text's (0: the text as a whole).
            assert!(e.line <= text.split('\n').count(), "{e:?}");
            drop(e.to_string());
        }
    }
});

/// A manifest `decode` accepted obeys every rule, and its encoding decodes to itself.
fn check(m: &Manifest) {
    assert_eq!(validate(m), Ok(()));
    assert!(m.vms.iter().all(|vm| check_image_name(&vm.image).is_ok()));
    let text = encode(m);
    assert_eq!(decode(&text).as_ref(), Ok(m), "{text}");
}
