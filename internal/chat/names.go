package chat

import (
	"unicode"
)

// CheckName refuses (ErrInvalid) a display name, group name or device name
// holding control characters (Cc: escape sequences, newlines) or format
// characters (Cf: bidirectional overrides such as U+202E, zero-width
// joiners), with which one user could make a name read as another's, or
// "\u202egpj.exe" read as "exe.jpg".
func CheckName(field, name string) error {
	for _, r := range name {
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return errf(ErrInvalid, "%s must not contain control or bidirectional formatting characters (U+%04X)", field, r)
		}
	}
	return nil
}
