# mailferry coexist job.ini: review before running.
# On-premises, in the Exchange Management Shell:
# line 4: olafur@contoso.com
#   target-present: ólafur has no targetAddress (not mail-enabled)
Enable-MailUser -Identity 'ólafur' -ExternalEmailAddress 'olafur@domino.contoso.com' -PrimarySMTPAddress 'olafur@contoso.com'
Set-MailUser -Identity 'ólafur' -UseMapiRichTextFormat Never
# line 5: o'brien@contoso.com
#   target-present: o'brien has no targetAddress (not mail-enabled)
Enable-MailUser -Identity 'o''brien' -ExternalEmailAddress 'o''brien@domino.contoso.com' -PrimarySMTPAddress 'o''brien@contoso.com'
Set-MailUser -Identity 'o''brien' -UseMapiRichTextFormat Never
# line 6: kim@contoso.com
#   upn-domain: UPN kim@contoso.local is not in contoso.com
# line 7: lee@contoso.com
#   primary-verified: primary SMTP address lee@fabrikam.com is not in a verified domain
# line 8: nop@contoso.com
#   primary-verified: nop has no primary SMTP address (no SMTP: in proxyAddresses, no mail)
#   target-present: nop has no targetAddress (not mail-enabled)
#   not mail-enabled here: fix the UPN and primary SMTP address first
# line 9: max@contoso.com
#   target-form: targetAddress max@contoso.com is not max@domino.contoso.com
Set-MailUser -Identity 'max' -ExternalEmailAddress 'max@domino.contoso.com'
# line 10: ana@contoso.com
#   target-form: targetAddress ana@domino.fabrikam.com is not ana@domino.contoso.com
#   target-verified: targetAddress ana@domino.fabrikam.com is not in a verified domain
Set-MailUser -Identity 'ana' -ExternalEmailAddress 'ana@domino.contoso.com'
# line 11: shared@contoso.com
#   target-unique: targetAddress shared@domino.contoso.com is also on dup2
# line 12: ghost@contoso.com
#   user-found: no directory user has ghost@contoso.com as mail, proxyAddresses or userPrincipalName
# line 13: amb@contoso.com
#   user-found: amb@contoso.com belongs to 2 directory users (amb1, amb2)
# line 14: pat@contoso.com
#   one-row-per-person: line 15 is the same person (pat)
# line 15: patricia@contoso.com
#   one-row-per-person: line 14 is the same person (pat)
# line 16: jorgen@contoso.com
#   target-present: jørgen has no targetAddress (not mail-enabled)
Enable-MailUser -Identity 'jørgen' -ExternalEmailAddress 'jorgen@domino.contoso.com' -PrimarySMTPAddress 'jorgen@contoso.com'
Set-MailUser -Identity 'jørgen' -UseMapiRichTextFormat Never
# line 17: darcy@contoso.com
#   target-present: d’arcy has no targetAddress (not mail-enabled)
Enable-MailUser -Identity 'd’’arcy' -ExternalEmailAddress 'darcy@domino.contoso.com' -PrimarySMTPAddress 'darcy@contoso.com'
Set-MailUser -Identity 'd’’arcy' -UseMapiRichTextFormat Never
# line 18: tabby@contoso.com
#   target-present: tab?name has no targetAddress (not mail-enabled)
#   a value holds a control character: do this one by hand
# Exchange Online: mail to the on-premises domain without TNEF (no winmail.dat):
New-RemoteDomain -Name 'contoso.com' -DomainName 'contoso.com'
Set-RemoteDomain -Identity 'contoso.com' -TNEFEnabled $false
