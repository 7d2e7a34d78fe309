// sts-broker: sends the SAML AuthnRequest (HTTP-POST binding) as soon as the page is parsed, by submitting
// the page's form to the identity provider. A file of its own, so the page's Content-Security-Policy allows
// no inline script; without JavaScript the form's button does the same.
(function () {
  "use strict";
  var form = document.getElementById("saml-post");
  if (form) {
    form.submit();
  }
})();
