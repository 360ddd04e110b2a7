//! Ticket parsing: the string a person pastes or scans.
#![no_main]

use ferry::signal::Ticket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ticket) = text.parse::<Ticket>() {
        // What parses must print back to something that parses the same.
        let again = ticket.to_string().parse::<Ticket>();
        assert_eq!(again.ok(), Some(ticket));
    }
});
