// Names of notify types and what a refusal by the peer usually means, for
// logs and `show peers`.

package ike

import "fmt"

var notifyNames = map[uint16]string{
	NotifyUnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD", NotifyInvalidIKESPI: "INVALID_IKE_SPI",
	NotifyInvalidMajorVersion: "INVALID_MAJOR_VERSION", NotifyInvalidSyntax: "INVALID_SYNTAX",
	NotifyInvalidMessageID: "INVALID_MESSAGE_ID", NotifyInvalidSPI: "INVALID_SPI",
	NotifyNoProposalChosen: "NO_PROPOSAL_CHOSEN", NotifyInvalidKEPayload: "INVALID_KE_PAYLOAD",
	NotifyAuthenticationFailed: "AUTHENTICATION_FAILED", NotifySinglePairRequired: "SINGLE_PAIR_REQUIRED",
	NotifyNoAdditionalSAs: "NO_ADDITIONAL_SAS", NotifyTSUnacceptable: "TS_UNACCEPTABLE",
	NotifyTemporaryFailure: "TEMPORARY_FAILURE", NotifyChildSANotFound: "CHILD_SA_NOT_FOUND",
}

// notifyName is the RFC 7296 name of a notify type, or its number.
func notifyName(t uint16) string {
	if n, ok := notifyNames[t]; ok {
		return n
	}
	if t == 0 {
		return "no notify"
	}
	return fmt.Sprintf("notify %d", t)
}

// refusalHint says what an error notify from the peer usually means.
func refusalHint(t uint16) string {
	switch t {
	case NotifyAuthenticationFailed:
		return ": it holds another PSK, or does not accept our identity or certificate (its log says which)"
	case NotifyNoProposalChosen:
		return ": it accepts none of our proposals (security.ike_proposal, security.suite)"
	case NotifyTSUnacceptable:
		return ": its traffic selectors are not our VTEP addresses (site.vtep here, peer.vtep there)"
	}
	return ""
}
