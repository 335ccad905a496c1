"""The fleet controller: changes running pods' sidecars in place, as the targets higher layers write ask."""
